"""kopf registrations, one module per custom resource. Thin: every reaction delegates to ``controller.operator``."""

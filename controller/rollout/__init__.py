"""The pure rollout engine: spec model, validation, status, and the state machine. No I/O lives here."""

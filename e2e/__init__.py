"""End-to-end tooling: the local sandbox (:mod:`e2e.sandbox`) and, later, the kind-cluster scripts."""

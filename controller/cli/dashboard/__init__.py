"""``kubectl coalmine dashboard``: a local web UI over the same reads and requests as the plugin's verbs.

The dashboard is the plugin with a page instead of a terminal: it connects with the user's own kubeconfig
(:func:`controller.cli.kubectl.access.connect`), so Kubernetes RBAC decides what it shows and what its buttons may
do; it reads through :mod:`controller.cli.kubectl.summary` and acts through
:mod:`controller.cli.kubectl.actions`, so a button and ``kubectl coalmine pause`` cannot behave differently.

Modules: :mod:`.views` turns objects into the JSON the page draws, :mod:`.api` answers the API's questions and
actions, :mod:`.live` keeps the watches (and the evidence timeline they feed), :mod:`.server` is the HTTP side
(127.0.0.1 only, same-origin and token checks) and :mod:`.command` is the typer command. ``static/`` holds the
page, its script and its stylesheet: no CDN, no build step.
"""

"""``coalmine validate``'s offline namespace check: the queries the operator would refuse to send, found before a push.

The operator refuses a metric whose rendered query could read another namespace's series
(:mod:`controller.providers.confine`). Offline, ``coalmine validate`` checks what the files alone decide:

- a Canary's (or a BlueGreen's) inline ``metrics[].query``, rendered with its name, namespace and
  ``templateVariables``;
- a Canary's ``templateRef`` to a MetricTemplate in the files given, rendered the same way (the problem is the
  Canary's, at ``spec.analysis.metrics[i].templateRef``, and names the template);
- every MetricTemplate, rendered for a Canary in the template's own namespace (a template a team writes for its own
  Canaries), each ``{{ variables.KEY }}`` as ``1``: a namespace a variable decides is refused (the operator checks
  the values each Canary gives).

The grant annotation counts for templates in ``--trusted-template-namespaces`` only, as in the operator (which
also trusts its own namespace; validate cannot know it, so name it in the option).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.template_render import placeholders
from controller.providers.confine import READS_OTHER_NAMESPACES
from controller.providers.queries import TemplateError, TemplateModel, prom_duration, render_template
from controller.providers.render import CanaryIdentity, Confinement, ConfinementError, confine_query, query_field
from controller.rollout.bluegreen_spec import canary_view, parse_valid_bluegreen
from controller.rollout.spec import CanarySpec, MetricSpec
from controller.rollout.validation import InvalidSpecError, parse_valid_canary

DEFAULT_NAMESPACE = "default"

Problems = list[dict[str, str]]


def _metadata(document: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = document.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _granted(template: Mapping[str, Any]) -> bool:
    annotations = _metadata(template).get("annotations")
    value = annotations.get(READS_OTHER_NAMESPACES) if isinstance(annotations, Mapping) else None
    return str(value or "").strip().lower() == "true"


def _query(template: Mapping[str, Any]) -> str | None:
    spec = template.get("spec")
    query = spec.get("query") if isinstance(spec, Mapping) else None
    return query if isinstance(query, str) else None


def confinement_problems(documents: Sequence[Any], confinement: Confinement) -> dict[int, Problems]:
    """Problems per index of ``documents`` (the documents of one file, or of stdin)."""
    templates = {
        (str(_metadata(document).get("namespace") or DEFAULT_NAMESPACE), str(_metadata(document).get("name"))): document
        for document in documents
        if isinstance(document, Mapping) and document.get("kind") == "MetricTemplate"
    }
    found: dict[int, Problems] = {}
    for index, document in enumerate(documents):
        if not isinstance(document, Mapping):
            continue
        if document.get("kind") in ("Canary", "BlueGreen"):
            problems = _canary_problems(document, templates, confinement)
        elif document.get("kind") == "MetricTemplate":
            problems = _template_problems(document, confinement)
        else:
            continue
        if problems:
            found[index] = problems
    return found


def _canary_problems(
    document: Mapping[str, Any], templates: Mapping[tuple[str, str], Mapping[str, Any]], confinement: Confinement
) -> Problems:
    try:
        spec: CanarySpec = (
            parse_valid_canary(document)
            if document.get("kind") == "Canary"
            else canary_view(parse_valid_bluegreen(document))
        )
    except (InvalidSpecError, ValueError):
        return []  # its problems are reported already
    identity = CanaryIdentity.of(document, spec)
    problems: Problems = []
    for index, metric in enumerate(spec.analysis.metrics):
        if metric.template_ref is None:
            query, path, granted = metric.query, f"spec.analysis.metrics[{index}].query", False
        else:
            key = (metric.template_ref.namespace or identity.namespace, metric.template_ref.name)
            template = templates.get(key)
            if template is None:
                continue  # not in these files: only the operator can check it
            query, path, granted = _query(template), f"spec.analysis.metrics[{index}].templateRef", _granted(template)
        if query is None:
            continue
        try:
            rendered = render_template(query, _model(identity, metric))
            owner = None if metric.template_ref is None else metric.template_ref.namespace or identity.namespace
            where = query_field(metric, index, identity.namespace)
            confine_query(rendered, identity.namespace, where, owner=owner, granted=granted, confinement=confinement)
        except ConfinementError as error:
            problems.append({"path": path, "message": str(error).removeprefix(f"{path} ")})
        except (TemplateError, ValueError):
            continue  # a rendering problem, not this check's
    return problems


def _model(identity: CanaryIdentity, metric: MetricSpec) -> TemplateModel:
    return TemplateModel(
        name=identity.name,
        namespace=identity.namespace,
        target=identity.target,
        service=identity.service,
        interval=prom_duration(metric.interval_s),
        variables=dict(metric.template_variables),
    )


def _template_problems(template: Mapping[str, Any], confinement: Confinement) -> Problems:
    query = _query(template)
    if query is None:
        return []
    namespace = str(_metadata(template).get("namespace") or DEFAULT_NAMESPACE)
    try:
        # A stand-in valid wherever a value may go (a string, a number, a duration's place, a label list): a
        # selector whose namespace a variable decides is refused, as the value is not the namespace.
        variables = {
            expression.removeprefix("variables."): "1"
            for expression in placeholders(query)
            if expression.startswith("variables.")
        }
        rendered = render_template(query, TemplateModel("canary", namespace, "canary", "canary", "1m", variables))
        confine_query(
            rendered,
            namespace,
            f"rendered for a Canary in namespace {namespace!r}, it",
            owner=namespace,
            granted=_granted(template),
            confinement=confinement,
        )
    except ConfinementError as error:
        return [{"path": "spec.query", "message": str(error)}]
    except (TemplateError, ValueError):
        return []
    return []

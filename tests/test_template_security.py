"""MetricTemplate rendering holds against hostile input: a template that would make rendering quadratic, and
``templateVariables`` (written by the Canary's author, possibly another team) that try to break out of the PromQL
the template's author wrote. The CRDs bound the free-form strings the operator renders or sends.

Before the fix the queries were rendered by ``re.sub(r"\\{\\{(.*?)\\}\\}")`` with the values pasted verbatim:
``"{{" * 20000`` took 4.6 s (0.3 s at 5000, 1.2 s at 10000: quadratic, so about two minutes for the 200 KB inputs
below), and ``x"} or up{job="`` read every namespace's series. :func:`_verbatim` keeps that old renderer as the
oracle: Flagger's own templates with normal values must render exactly as it did.
"""

from __future__ import annotations

import codecs
import json
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from typer.testing import CliRunner

from analysis.template_render import placeholders
from controller.cli.main import app
from controller.providers.prometheus import PrometheusProvider
from controller.providers.queries import TemplateError, TemplateModel, arm_models, render_template
from controller.rollout.validation import validate_document

if TYPE_CHECKING:
    from prometheus_server import RecordedPrometheus

pytest_plugins = ["prometheus_server"]

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = [*sorted((ROOT / "tests" / "manifests").rglob("*.yaml")), *sorted((ROOT / "examples").rglob("*.yaml"))]
HOSTILE_SIZE = 200_000  # characters; the old renderer needed minutes for these, the new one milliseconds


def _verbatim(query: str, model: TemplateModel) -> str:
    """The renderer before the fix (values pasted as they are), kept as the oracle for normal values."""

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression.startswith("variables."):
            return model.variables[expression.removeprefix("variables.")]
        return str(getattr(model, expression))

    return re.sub(r"\{\{(.*?)\}\}", substitute, query, flags=re.DOTALL)


# --- 1. rendering is linear ----------------------------------------------------------------------------------------

HOSTILE_UNCLOSED = {
    "open braces": "{{" * (HOSTILE_SIZE // 2),
    "nested open braces": "{{{{" * (HOSTILE_SIZE // 4),
    "open braces in a string": 'up{job="' + "{{" * (HOSTILE_SIZE // 2),
    "one placeholder holding them all": "{{ " + "{{" * (HOSTILE_SIZE // 2) + " }}",
}


@pytest.mark.parametrize("query", HOSTILE_UNCLOSED.values(), ids=HOSTILE_UNCLOSED.keys())
def test_a_hostile_template_is_refused_quickly(query: str) -> None:
    # An absolute bound is not flaky here: the old renderer took minutes on these (see the module doc), the new one
    # a few milliseconds, so 1 s leaves a factor of a hundred for a slow CI machine on either side.
    started = time.perf_counter()
    with pytest.raises(TemplateError) as raised:
        render_template(query, TemplateModel("web", "shop", "web", "web"))
    assert time.perf_counter() - started < 1.0
    assert len(str(raised.value)) < 300  # the message quotes at most the start of a 200 KB expression


class _CountingText(str):
    """A query that counts the characters its ``find`` calls read: the work of the renderer's scan."""

    scanned = 0

    def find(self, sub: str, start: Any = None, end: Any = None) -> int:
        begin = 0 if start is None else start
        found = str.find(self, sub, begin)
        self.scanned += (len(self) if found < 0 else found) - begin
        return found


LEXICALLY_BUSY = {
    "quotes": '"a"' * (HOSTILE_SIZE // 3),
    "single quotes": "'a'" * (HOSTILE_SIZE // 3),
    "backticks": "`" * HOSTILE_SIZE,
    "escapes in a string": '"' + "\\" * HOSTILE_SIZE + '"',
    "comments": "# c\n" * (HOSTILE_SIZE // 4),
    "placeholders": 'x{a="{{ target }}"}' * (HOSTILE_SIZE // 19),
}


@pytest.mark.parametrize("query", LEXICALLY_BUSY.values(), ids=LEXICALLY_BUSY.keys())
def test_the_scan_reads_each_character_a_bounded_number_of_times(query: str) -> None:
    # Counting work instead of timing it: a search that restarted for every token (the easy mistake with several
    # needles) would read these texts tens of thousands of times over.
    text = _CountingText(query)
    render_template(text, TemplateModel("web", "shop", "web", "web"))
    assert text.scanned <= 10 * len(query)


@pytest.mark.parametrize("query", HOSTILE_UNCLOSED.values(), ids=HOSTILE_UNCLOSED.keys())
def test_listing_the_placeholders_of_a_hostile_template_is_quick(query: str) -> None:
    started = time.perf_counter()
    try:
        listed = placeholders(query)
    except TemplateError:
        listed = None
    assert time.perf_counter() - started < 1.0
    closed = query.endswith("}}")
    assert listed == ([query[2:-2].strip()] if closed else None)


# --- 2. normal use renders exactly as before -----------------------------------------------------------------------

# Flagger's documented Prometheus templates (docs/gitbook/usage/metrics.md) that are not in tests/manifests.
FLAGGER_DOCS_TEMPLATES = {
    "linkerd-latency": """histogram_quantile(
  0.99,
  sum(
    rate(
      response_latency_ms_bucket{
        namespace="{{ namespace }}",
        deployment=~"{{ target }}",
        direction="{{ variables.direction }}"
      }[{{ interval }}]
    )
  ) by (le)
)
""",
    "grpc-error-rate": """100 - sum(
    rate(
        grpc_server_handled_total{
          grpc_code!="OK",
          kubernetes_namespace="{{ namespace }}",
          kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
        }[{{ interval }}]
    )
)
/
sum(
    rate(
        grpc_server_started_total{
          kubernetes_namespace="{{ namespace }}",
          kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
        }[{{ interval }}]
    )
) * 100
""",
    # Coalmine's docs/metrics.md example, and placeholders outside strings: a metric name, a label list, a number.
    "docs-codes": 'sum(rate(http_requests_total{namespace="{{ namespace }}", pod=~"{{ target }}-[0-9a-z]+-[0-9a-z]+",\n'
    '    status=~"{{ variables.codes }}"}[{{ interval }}]))',
    "unquoted-tokens": "sum by ({{ variables.by }}) (rate({{ variables.metric }}{app='{{ service }}'}[{{ interval }}]))"
    " > {{ variables.threshold }} # {{ name }} in {{ namespace }}",
}


def _manifest_queries() -> Iterator[tuple[str, str]]:
    """Every MetricTemplate query and inline metric query in the repository's test manifests and examples."""
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if not isinstance(document, Mapping):
                continue
            spec = document.get("spec") or {}
            name = f"{path.relative_to(ROOT)}:{(document.get('metadata') or {}).get('name')}"
            if document.get("kind") == "MetricTemplate":
                yield name, spec["query"]
            for key in ("analysis", "canaryAnalysis"):
                for metric in (spec.get(key) or {}).get("metrics") or ():
                    if "query" in metric:
                        yield f"{name}:{metric['name']}", metric["query"]


TEMPLATES = dict([*_manifest_queries(), *FLAGGER_DOCS_TEMPLATES.items()])
NORMAL_VARIABLES = {
    "direction": "inbound",
    "codes": "5..",
    "metric": "http_requests_total",
    "by": "le,code",
    "threshold": "0.5",
}
NORMAL_MODELS = [
    TemplateModel("podinfo", "test", "podinfo", "podinfo", "1m", NORMAL_VARIABLES),
    TemplateModel("web-v2", "shop.eu", "web-v2", "web-v2-svc", "1m30s", {**NORMAL_VARIABLES, "codes": "404|5.*"}),
    TemplateModel("app", "default", "app", "app", "250ms", {**NORMAL_VARIABLES, "threshold": "-1e3", "by": ""}),
    *arm_models(TemplateModel("podinfo", "test", "podinfo", "podinfo", "2h", NORMAL_VARIABLES)),
]


def test_the_repository_manifests_hold_flaggers_templates() -> None:
    assert "tests/manifests/flagger/metric-template-and-alerts.yaml:not-found-percentage" in TEMPLATES
    assert "examples/metric-template.yaml:not-found-percentage" in TEMPLATES


@pytest.mark.parametrize("model", NORMAL_MODELS, ids=lambda model: f"{model.target}-{model.interval}")
@pytest.mark.parametrize("template", TEMPLATES.values(), ids=TEMPLATES.keys())
def test_flagger_templates_render_exactly_as_before_for_normal_values(template: str, model: TemplateModel) -> None:
    assert render_template(template, model) == _verbatim(template, model)


@pytest.mark.parametrize("template", TEMPLATES.values(), ids=TEMPLATES.keys())
def test_placeholders_lists_what_the_old_regex_found(template: str) -> None:
    assert placeholders(template) == [raw.strip() for raw in re.findall(r"\{\{(.*?)\}\}", template, re.DOTALL)]


def test_the_documented_linkerd_template_renders_to_the_expected_query() -> None:
    model = TemplateModel("podinfo", "test", "podinfo", "podinfo", "1m", {"direction": "inbound"})
    rendered = render_template(FLAGGER_DOCS_TEMPLATES["linkerd-latency"], model)
    assert 'namespace="test",\n        deployment=~"podinfo",\n        direction="inbound"\n      }[1m]' in rendered


# --- 2. a value stays where the template's author put it -----------------------------------------------------------

BREAKOUTS = [
    'x"} or up{job="',
    "x'} or up{job='",
    'x\\"} or up{job=\\"',  # pre-escaped quotes: the backslashes are doubled, the quote escaped again
    "x\\",  # a trailing backslash would escape the closing quote
    'x\n"} or up{job="',
    "5\\d\\d",
    "",
]


def _literal_after(rendered: str, prefix: str) -> tuple[str, str]:
    """(content, rest) of the PromQL string literal opening right after ``prefix``, read as Prometheus reads it."""
    start = rendered.index(prefix) + len(prefix)
    quote = rendered[start - 1]
    at = start
    while rendered[at] != quote:
        assert rendered[at] != "\n", "a raw newline in a quoted string is a PromQL syntax error"
        at += 2 if rendered[at] == "\\" else 1
    return codecs.decode(rendered[start:at], "unicode_escape"), rendered[at + 1 :]


@pytest.mark.parametrize("quote", ['"', "'"])
@pytest.mark.parametrize("value", BREAKOUTS)
def test_a_value_in_a_quoted_string_stays_that_strings_content(quote: str, value: str) -> None:
    template = "sum(rate(http_requests_total{namespace=Q{{ namespace }}Q, code=~Q{{ variables.code }}Q}[1m]))".replace(
        "Q", quote
    )
    rendered = render_template(template, TemplateModel("web", "shop", "web", "web", variables={"code": value}))
    content, rest = _literal_after(rendered, f"code=~{quote}")
    assert content == value
    assert rest == "}[1m]))"  # the template's own text resumes right after the literal
    assert rendered.startswith(f"sum(rate(http_requests_total{{namespace={quote}shop{quote}, code=~{quote}")


def test_a_regex_value_is_escaped_so_prometheus_sees_what_the_author_meant() -> None:
    model = TemplateModel("web", "shop", "web", "web", variables={"code": "5\\d\\d"})
    assert render_template('x{code=~"{{ variables.code }}"}', model) == 'x{code=~"5\\\\d\\\\d"}'


def test_a_value_in_a_raw_string_is_kept_unless_it_holds_a_backtick() -> None:
    template = "x{code=~`{{ variables.code }}`}"
    assert (
        render_template(template, TemplateModel("w", "s", "w", "w", variables={"code": '5\\d"'})) == 'x{code=~`5\\d"`}'
    )
    with pytest.raises(TemplateError, match=r"templateVariables\.code .* backtick"):
        render_template(template, TemplateModel("w", "s", "w", "w", variables={"code": "x`} or up{a=`"}))


PLAIN_TOKENS = ["up", "http_requests_total", "job:rate5m", "0.5", "-1e3", "+Inf", "NaN", "5m", "1h30m", "1.5h", "250ms"]
PLAIN_TOKENS += ["le,code", "podinfo-v2", "web.shop", ""]
NOT_PLAIN = ["1 or up", "1)", "x{job='a'}", "le, code", '"x"', "1#", "1\nor up", "a(b)", "a;b", "1/up"]


@pytest.mark.parametrize("value", PLAIN_TOKENS)
def test_outside_strings_a_single_plain_token_is_substituted(value: str) -> None:
    model = TemplateModel("w", "s", "w", "w", variables={"v": value})
    assert render_template("x > {{ variables.v }}", model) == f"x > {value}"


@pytest.mark.parametrize("value", NOT_PLAIN)
def test_outside_strings_anything_more_than_a_token_is_refused_naming_the_variable(value: str) -> None:
    model = TemplateModel("w", "s", "w", "w", variables={"threshold": value})
    with pytest.raises(TemplateError, match=r"^templateVariables\.threshold .* outside a quoted string"):
        render_template("sum(x) > {{ variables.threshold }}", model)


def test_a_value_cannot_end_a_comment() -> None:
    model = TemplateModel("w", "s", "w", "w", variables={"note": "x\nor up"})
    with pytest.raises(TemplateError, match=r"templateVariables\.note"):
        render_template("x # {{ variables.note }}\n", model)


def test_the_models_own_fields_take_the_same_path() -> None:
    hostile = TemplateModel("web", 'shop"} or up{a="', "web", "web")
    assert render_template('x{ns="{{ namespace }}"}', hostile) == 'x{ns="shop\\"} or up{a=\\""}'
    with pytest.raises(TemplateError, match=r"^namespace "):
        render_template("{{ namespace }}_requests", hostile)


def test_a_backslash_before_a_placeholder_in_a_string_is_refused() -> None:
    # "\{{ v }}" would put the template's backslash before the value's escaping: "\" + "\"" closes the string.
    model = TemplateModel("w", "s", "w", "w", variables={"v": '"} or up{a="'})
    with pytest.raises(TemplateError, match="backslash"):
        render_template('x{a="\\{{ variables.v }}"}', model)
    assert render_template('x{a="\\\\{{ target }}"}', model) == 'x{a="\\\\w"}'  # an escaped backslash is fine


def test_existing_errors_are_unchanged() -> None:
    model = TemplateModel("web", "shop", "web", "web", variables={"code": "503"})
    with pytest.raises(TemplateError, match=r"'direction' is not set in templateVariables \(set: code\)"):
        render_template('x{d="{{ variables.direction }}"}', model)
    with pytest.raises(TemplateError, match=r"unsupported template expression \{\{ target \| upper \}\}"):
        render_template("{{ target | upper }}", model)
    with pytest.raises(TemplateError, match="unclosed"):
        render_template('x{a="{{ target }}"} {{ target', model)


# --- 2. against a real Prometheus ----------------------------------------------------------------------------------

SHOP_5XX = (
    'sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{{ namespace }}", '
    'response_code="{{ variables.code }}"}[1m]))'
)
SHOP_5XX_REGEX = SHOP_5XX.replace('response_code="', 'response_code=~"')
# Closes the matcher, the rate and the sum, and adds the same sum for namespace "other" (a 50 rps decoy there).
INJECTION = (
    '503"}[1m])) + sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="other", '
    'response_code="503'
)


@pytest.fixture(scope="module")
def prometheus(recorded_prometheus: RecordedPrometheus) -> PrometheusProvider:
    return PrometheusProvider(recorded_prometheus.url, timeout_s=5)


@pytest.mark.prometheus
def test_an_injection_reads_another_namespace_only_when_pasted_verbatim(
    prometheus: PrometheusProvider, recorded_prometheus: RecordedPrometheus
) -> None:
    rec = recorded_prometheus
    at = rec.start + 1800
    model = TemplateModel("podinfo", rec.namespace, rec.target, "podinfo", variables={"code": INJECTION})
    honest = TemplateModel("podinfo", rec.namespace, rec.target, "podinfo", variables={"code": "503"})
    own = rec.canary.error_rate + rec.primary.error_rate
    assert prometheus.run_query(render_template(SHOP_5XX, honest), at=at).value == pytest.approx(own)
    leaked = prometheus.run_query(_verbatim(SHOP_5XX, model), at=at).value
    assert leaked is not None and leaked > own + 10  # the old rendering: the other namespace's 50 rps leaks in
    assert prometheus.run_query(render_template(SHOP_5XX, model), at=at).value is None  # a literal no code equals


@pytest.mark.prometheus
def test_a_regex_variable_now_reaches_prometheus_as_written(
    prometheus: PrometheusProvider, recorded_prometheus: RecordedPrometheus
) -> None:
    rec = recorded_prometheus
    model = TemplateModel("podinfo", rec.namespace, rec.target, "podinfo", variables={"code": "5\\d\\d"})
    result = prometheus.run_query(render_template(SHOP_5XX_REGEX, model), at=rec.start + 1800)
    assert result.value == pytest.approx(rec.canary.error_rate + rec.primary.error_rate)


# --- 3. the CRDs bound what the operator renders and sends ---------------------------------------------------------

FLAGGER_TEMPLATES = ROOT / "tests" / "manifests" / "flagger" / "metric-template-and-alerts.yaml"


def _flagger_documents() -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in yaml.safe_load_all(FLAGGER_TEMPLATES.read_text())}


def test_coalmine_validate_names_an_over_long_query(tmp_path: Path) -> None:
    template = _flagger_documents()["MetricTemplate"]
    template["spec"]["query"] = "sum(up)" + " " * 16384
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(template))
    result = CliRunner().invoke(app, ["validate", "--output", "json", str(path)])
    assert result.exit_code == 1, result.output
    [document] = json.loads(result.stdout)
    assert [problem["path"] for problem in document["problems"]] == ["spec.query"]
    assert document["problems"][0]["message"] == "must be at most 16384 characters (got 16391)"  # not the value


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value


OVER_LONG = [
    ("Canary", "spec.analysis.metrics.0.query", 16385, "spec.analysis.metrics[0].query"),
    (
        "Canary",
        "spec.analysis.metrics.0.templateVariables.code",
        1025,
        "spec.analysis.metrics[0].templateVariables.code",
    ),
    ("Canary", "spec.metricsServer", 2049, "spec.metricsServer"),
    ("MetricTemplate", "spec.provider.address", 2049, "spec.provider.address"),
    ("AlertProvider", "spec.address", 2049, "spec.address"),
    ("AlertProvider", "spec.proxy", 2049, "spec.proxy"),
    ("AlertProvider", "spec.channel", 257, "spec.channel"),
    ("AlertProvider", "spec.username", 257, "spec.username"),
]


@pytest.mark.parametrize(("kind", "field", "length", "reported"), OVER_LONG, ids=[row[1] for row in OVER_LONG])
def test_over_long_free_form_strings_are_refused_at_their_field(
    kind: str, field: str, length: int, reported: str
) -> None:
    document = _flagger_documents()[kind]
    if field.endswith(".query"):  # an inline query replaces the templateRef
        del document["spec"]["analysis"]["metrics"][0]["templateRef"]
    url = any(word in field for word in ("address", "proxy", "Server"))
    value = "http://x/" + "a" * (length - 9) if url else "a" * length
    _set(document, field, value)
    assert reported in [problem.path for problem in validate_document(document).problems]
    _set(document, field, value[:-1])  # one character less is accepted
    assert reported not in [problem.path for problem in validate_document(document).problems]


@pytest.mark.parametrize("field", ["url", "metadata"])
def test_over_long_webhook_strings_are_refused_at_their_field(field: str) -> None:
    canary = _flagger_documents()["Canary"]
    limit = 2048 if field == "url" else 32768
    text = "http://tester/" + "a" * (limit - 13)
    hook: dict[str, Any] = {"name": "load", "url": "http://tester/"}
    hook.update({"url": text} if field == "url" else {"metadata": {"cmd": text}})
    canary["spec"]["analysis"]["webhooks"] = [hook]
    reported = "spec.analysis.webhooks[0].url" if field == "url" else "spec.analysis.webhooks[0].metadata.cmd"
    assert reported in [problem.path for problem in validate_document(canary).problems]


def test_validate_is_linear_on_a_hostile_query_too() -> None:
    """``coalmine validate`` scans placeholders with the renderer's linear scan (it used the quadratic regex: 9 s
    on 40 KB of ``{{``). The 200 KB query is also over the CRD's maxLength, reported without echoing it."""
    from controller.rollout.validation import validate_document

    document = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "hostile", "namespace": "test"},
        "spec": {"provider": {"type": "prometheus"}, "query": "{{" * 100_000},
    }
    started = time.perf_counter()
    report = validate_document(document)
    elapsed = time.perf_counter() - started
    messages = [str(problem) for problem in report.problems]
    assert elapsed < 1.0, f"validate took {elapsed:.1f} s"
    assert any("spec.query" in m and "at most 16384 characters (got 200000)" in m for m in messages), messages
    assert all(len(m) < 500 for m in messages)

"""Write prometheusrule.yaml from fmnist.rules.yml: the same groups, as a PrometheusRule
of the Prometheus Operator (monitoring.coreos.com/v1). The rules file is the source;
run this after editing it (tests/test_alerts.py fails while the two differ):

    python3 deploy/monitoring/make-prometheusrule.py

The rules are copied as text, comments and all, indented under `spec:`.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = HERE / "fmnist.rules.yml"
MANIFEST = HERE / "prometheusrule.yaml"

HEADER = """\
# Made by deploy/monitoring/make-prometheusrule.py from fmnist.rules.yml: edit that file,
# then run the script. A PrometheusRule of the Prometheus Operator; its selector must
# match this resource's labels (the kube-prometheus-stack chart selects
# `release: <its release name>` by default: add that label here, or set
# ruleSelectorNilUsesHelmValues=false).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: fmnist-job
  namespace: fmnist
  labels:
    app.kubernetes.io/name: fmnist-job
    app.kubernetes.io/part-of: fmnist-job
    app.kubernetes.io/component: monitoring
    app.kubernetes.io/managed-by: kubectl
spec:
"""


def render(rules_text: str) -> str:
    """The manifest for the rules file's text: its `groups:` and what follows."""
    body = rules_text[rules_text.index("\ngroups:") + 1 :]
    return HEADER + "".join(f"  {line}" if line.strip() else line for line in body.splitlines(True))


def main() -> int:
    MANIFEST.write_text(render(RULES.read_text()))
    print(f"wrote {MANIFEST}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/chat offline, without a cluster:
#   1. helm lint --strict, for the default values and for deploy/helm/chat/ci/all-on-values.yaml
#      (every optional part on), at the oldest and the newest Kubernetes version checked;
#   2. helm template of both value sets;
#   3. every rendered object against the Kubernetes API's JSON schemas of those versions in strict
#      mode (unknown fields are errors), plus cross-object references and the chart's own rules
#      (deploy/helm/validate.py);
#   4. a self-test that it all bites: values helm must refuse, and broken copies of rendered
#      objects that the validator (and kubernetes-validate's own CLI) must reject.
# Exits non-zero on any failure; the last line is a one-line summary.
#
# Tools, installed on first use and reused (kept outside the repository):
#   helm v3 (built from the Go module proxy with `go install`, niced; ~5 minutes once) and
#   kubernetes-validate (PyPI, in a virtualenv; it bundles the API schemas), in
#   ${CHAT_TOOLS:-~/.cache/chat-tools}.
#   KUBE_VERSIONS   Kubernetes versions to validate against (default 1.29.0,1.37.0: the chart's
#                   kubeVersion floor and the newest schemas kubernetes-validate has)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart="$repo/deploy/helm/chat"
tools="${CHAT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/chat-tools}"
helm_version=v3.21.4
# The Kubernetes minor version of the client-go that helm release is built with (its go.mod):
# helm's default capabilities, as its own Makefile sets them.
helm_k8s_minor=36
kv_version=1.37.0
kube_versions="${KUBE_VERSIONS:-1.29.0,1.37.0}"
min_kube=${kube_versions%%,*}
max_kube=${kube_versions##*,}
started=$(date +%s)

say() { echo "helm-check: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

mkdir -p "$tools/bin"
# One installer at a time (parallel runs wait here; the check itself is read-only).
exec 9>"$tools/.lock"
flock 9

# --- tools ---------------------------------------------------------------------------------------
helm="$tools/bin/helm-$helm_version"
if [ ! -x "$helm" ]; then
  command -v go >/dev/null || die "go is needed once to build helm (go install from the module proxy)"
  say "building helm $helm_version with go install (once, niced; a few minutes)"
  build=$(mktemp -d "$tools/bin/.build.XXXXXX")
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_k8s_minor"
  done
  GOBIN="$build" GOFLAGS=-buildvcs=false nice -n 19 \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$helm_version" \
    || { rm -rf "$build"; die "go install helm.sh/helm/v3/cmd/helm@$helm_version"; }
  mv "$build/helm" "$helm"
  rm -rf "$build"
fi
ln -sfn "helm-$helm_version" "$tools/bin/helm"

venv="$tools/kubernetes-validate-$kv_version"
if ! "$venv/bin/python" -c "import sys, kubernetes_validate.version as v; sys.exit(v.__version__ != '$kv_version')" 2>/dev/null; then
  say "installing kubernetes-validate $kv_version into $venv (once)"
  rm -rf "$venv"
  # A fresh Debian/Ubuntu may lack the venv module.
  python3 -m venv "$venv" 2>/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
  }
  nice -n 19 "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$kv_version" \
    || { rm -rf "$venv"; die "pip install kubernetes-validate==$kv_version"; }
fi
flock -u 9

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# --- 1, 2: lint and render -----------------------------------------------------------------------
sets=("defaults=" "all-on=$chart/ci/all-on-values.yaml")
rendered=()
for set in "${sets[@]}"; do
  label=${set%%=*}
  values=${set#*=}
  args=()
  [ -n "$values" ] && args=(-f "$values")
  for kv in "$min_kube" "$max_kube"; do
    if ! "$helm" lint --strict --quiet --kube-version "$kv" "$chart" "${args[@]}" >"$out/lint.txt" 2>&1; then
      cat "$out/lint.txt" >&2
      die "helm lint --strict ($label values, Kubernetes $kv)"
    fi
  done
  if ! "$helm" template chat "$chart" --namespace chat --kube-version "$max_kube" "${args[@]}" \
      >"$out/$label.yaml" 2>"$out/template.txt"; then
    cat "$out/template.txt" >&2
    die "helm template ($label values)"
  fi
  rendered+=("$label=$out/$label.yaml")
  # NOTES.txt is rendered only by install/upgrade (which want a cluster): render it here through a
  # copy of the chart where it is the body of a ConfigMap.
  rm -rf "$out/notes" && cp -r "$chart" "$out/notes"
  { echo '{{- define "chat.notesCheck" -}}'; cat "$chart/templates/NOTES.txt"; echo '{{- end }}'; } \
    >"$out/notes/templates/_notes_check.tpl"
  printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: notes-check}' \
    'data: {notes: {{ include "chat.notesCheck" . | quote }}}' >"$out/notes/templates/notes-check.yaml"
  rm "$out/notes/templates/NOTES.txt"
  if ! "$helm" template chat "$out/notes" --namespace chat --kube-version "$max_kube" "${args[@]}" \
      --show-only templates/notes-check.yaml >"$out/notes.yaml" 2>"$out/template.txt" \
      || ! grep -q "Message servers scale up to the partition count" "$out/notes.yaml"; then
    cat "$out/template.txt" >&2
    die "NOTES.txt does not render ($label values)"
  fi
done

# --- 3: validate; 4: self-test -------------------------------------------------------------------
# Values helm must refuse (values.schema.json, the chart's own checks).
refused=0
while IFS='|' read -r what setting expect; do
  if "$helm" template chat "$chart" --kube-version "$max_kube" --set "$setting" >/dev/null 2>"$out/refusal.txt"; then
    die "self-test: helm accepted $what ($setting)"
  fi
  grep -qF "$expect" "$out/refusal.txt" || { cat "$out/refusal.txt" >&2; die "self-test: helm refused $what for another reason"; }
  refused=$((refused + 1))
  say "self-test: helm refuses $what: $(grep -v -e '^\s*$' -e 'Use --debug' "$out/refusal.txt" | tail -1 |
    sed -E 's/^Error: execution error at \([^)]*\): //; s/^- //')"
done <<'EOF'
a misspelt value|gatway.replicas=3|additional properties 'gatway' not allowed
an unknown consistency level|cassandra.consistency=most|/cassandra/consistency
more message servers than partitions|messageServer.replicas=17|exceeds kafka.partitions
min.insync.replicas above the replication factor|kafka.minInsyncReplicas=4|exceeds kafka.replicationFactor
a short JWT key|auth.jwtSecret=short|at least 32 bytes
EOF

"$venv/bin/python" "$repo/deploy/helm/validate.py" --versions "$kube_versions" \
  --external-service chat-objectstore --self-test "${rendered[@]}" | tee "$out/validate.txt" \
  || die "object validation (above)"

# The same end to end through files and exit codes: an unknown field in the gateway Deployment's
# spec, which kubernetes-validate's own CLI and validate.py must both reject.
"$venv/bin/python" - "$out/defaults.yaml" "$out/broken.yaml" <<'EOF'
import sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
gw = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-gateway"))
gw["spec"]["terminationGracePeriodSecond"] = 30  # misspelt: belongs in the pod spec, with an s
yaml.safe_dump_all(objs, open(sys.argv[2], "w"))
EOF
if "$venv/bin/kubernetes-validate" --strict --quiet -k "$max_kube" "$out/broken.yaml" >"$out/kv.txt" 2>&1; then
  die "self-test: kubernetes-validate --strict accepted an unknown field in a Deployment spec"
fi
say "self-test: kubernetes-validate --strict rejects it: $(grep -m1 ERROR "$out/kv.txt" | sed 's/.*did not validate for //')"
if "$venv/bin/python" "$repo/deploy/helm/validate.py" --versions "$kube_versions" \
    --external-service chat-objectstore "broken=$out/broken.yaml" >"$out/broken.txt" 2>&1 \
    || ! grep -q "'terminationGracePeriodSecond' was unexpected" "$out/broken.txt"; then
  cat "$out/broken.txt" >&2
  die "self-test: validate.py did not reject the unknown field in a Deployment spec"
fi
say "self-test: validate.py exits non-zero on it too"

summary=$(grep -m1 '^validated ' "$out/validate.txt")
rejected=$(grep -m1 -o '[0-9]*/[0-9]* broken variants rejected' "$out/validate.txt")
echo "helm-check: OK in $(( $(date +%s) - started ))s: helm $helm_version lint --strict, template and NOTES of ${#sets[@]} value sets; ${summary#validated }; self-test: $rejected, $refused bad values refused, 1 broken file rejected by kubernetes-validate's CLI"

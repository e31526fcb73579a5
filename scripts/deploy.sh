#!/usr/bin/env bash
# Apply one kustomize overlay (k8s/overlays/<env>) and wait for the Redis, gateway and shipper rollouts.
#
#   scripts/deploy.sh [options] dev|staging|prod
#     --dry-run          kubectl apply --dry-run=client: show what would be applied, change nothing
#     --diff             kubectl diff against the live objects, change nothing
#     --context NAME     kubeconfig context to use (default: the current one)
#     --timeout DURATION rollout wait, e.g. 300s or 10m (default 300s)
#
# Exit status: 0 applied and rolled out (or dry run/diff done), 1 kubectl or rollout failed,
# 2 bad usage. The Secret loki-gateway-secrets must exist first (docs/deploy.md).
set -euo pipefail

readonly NAMESPACE=gpt
readonly DEPLOYMENTS=(loki-gateway-redis gateway shipper)  # Redis first: the gateway uses it

usage() {
  echo "usage: $0 [--dry-run | --diff] [--context NAME] [--timeout DURATION] dev|staging|prod" >&2
  exit 2
}

mode=apply
timeout=300s
overlay=
kube=(kubectl)
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) mode=dry-run ;;
    --diff) mode=diff ;;
    --context)
      [ $# -ge 2 ] && [ -n "$2" ] || { echo "--context needs a name" >&2; usage; }
      kube+=(--context "$2"); shift ;;
    --context=*) [ -n "${1#*=}" ] || usage; kube+=(--context "${1#*=}") ;;
    --timeout)
      [ $# -ge 2 ] || usage
      timeout="$2"; shift ;;
    --timeout=*) timeout="${1#*=}" ;;
    -h|--help) usage ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *)
      [ -z "$overlay" ] || { echo "only one overlay, got '$overlay' and '$1'" >&2; usage; }
      overlay="$1" ;;
  esac
  shift
done

case "$overlay" in
  dev|staging|prod) ;;
  "") echo "missing overlay" >&2; usage ;;
  *) echo "unknown overlay: '$overlay' (expected dev, staging or prod)" >&2; usage ;;
esac
[[ "$timeout" =~ ^[0-9]+(s|m|h)?$ ]] || { echo "bad --timeout: '$timeout' (e.g. 300s, 10m)" >&2; usage; }
command -v kubectl >/dev/null || { echo "kubectl not found on PATH" >&2; exit 1; }

here="${BASH_SOURCE[0]%/*}"
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
root="$(cd "$here/.." && pwd)"
dir="${root}/k8s/overlays/${overlay}"

case "$mode" in
  dry-run)
    echo "dry run of overlay ${overlay} (nothing is changed)" >&2
    exec "${kube[@]}" apply -k "$dir" --dry-run=client
    ;;
  diff)
    # kubectl diff exits 1 when there are differences; only >1 is an error.
    status=0
    "${kube[@]}" diff -k "$dir" || status=$?
    [ "$status" -le 1 ] || exit 1
    exit 0
    ;;
esac

echo "applying overlay ${overlay}" >&2
"${kube[@]}" apply -k "$dir"
for deployment in "${DEPLOYMENTS[@]}"; do
  if ! "${kube[@]}" -n "$NAMESPACE" rollout status "deployment/${deployment}" --timeout="$timeout"; then
    echo "rollout of deployment/${deployment} did not finish; see: kubectl -n ${NAMESPACE} describe deployment/${deployment}" >&2
    exit 1
  fi
done
echo "overlay ${overlay} rolled out" >&2

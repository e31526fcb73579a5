#!/usr/bin/env bash
# Apply one kustomize overlay and wait for both deployments to roll out.
set -euo pipefail

usage() { echo "usage: $0 dev|staging|prod [timeout, default 300s]" >&2; exit 2; }

overlay="${1:-}"
timeout="${2:-300s}"
case "$overlay" in
  dev|staging|prod) ;;
  *) echo "unknown overlay: '${overlay}'" >&2; usage ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
namespace=gpt

kubectl apply -k "${root}/k8s/overlays/${overlay}"
for deployment in gateway shipper; do
  kubectl -n "$namespace" rollout status "deployment/${deployment}" --timeout="$timeout"
done
echo "overlay ${overlay} rolled out"

#!/usr/bin/env bash
# Runs the Bazel test targets offline (README.md, "Bazel"). Needs Debian's
# bazel-bootstrap and bazel-bootstrap-source, and the project's virtual
# environment active so that its python3 provides tensorflow, keras, ...
set -euo pipefail
cd "$(dirname "$0")/.."
exec bazel test \
  --override_repository=remote_coverage_tools="$PWD/tools/bazel_offline/remote_coverage_tools" \
  --action_env=PATH --test_env=PATH --test_env=HOME --test_env=TFPANC_REALDATA \
  "${@:-//...}"

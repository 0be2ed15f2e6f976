#!/bin/sh
echo "coverage is not available in the offline Bazel setup" >&2
exit 1

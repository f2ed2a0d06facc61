#!/usr/bin/env bash
# Miri over the KVM backend's unsafe constructor (the tests of src/sys.rs, which make no
# system call). The copies themselves are mapwalk-file's, checked by its own miri.sh.
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/miri.sh" mapwalk-kvm sys:: regions:: pause:: "$@"

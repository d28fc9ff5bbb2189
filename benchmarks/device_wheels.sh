#!/usr/bin/env bash
# Downloads, here, the wheels a lent GPU machine lacks for the GPU check (benchmarks/device_packages.txt,
# "carried"), for its Python 3.12, at the versions pinned in requirements/ci-lock.txt, into .whl/ (git-ignored).
#
#   benchmarks/device_wheels.sh                         # here (needs PyPI)
#   then the device tool's run with command "bash benchmarks/device_run.sh" and carry [".whl"]
#
# The working tree and the carried paths travel in 64 MiB together: this checks that they fit.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION="${DEVICE_PYTHON_VERSION:-3.12}"
pins=()
for name in $(awk '!/^#/ && $2 == "carried" {print $1}' benchmarks/device_packages.txt); do
    pin=$(grep -i -E "^${name}==" requirements/ci-lock.txt) || {
        echo "$name is not pinned in requirements/ci-lock.txt" >&2
        exit 1
    }
    pins+=("${pin%%+*}")
done
rm -rf .whl
mkdir -p .whl
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
    "${platforms[@]}" -d .whl "${pins[@]}"
wheels_mib=$(du -sm .whl | cut -f1)
tree_mib=$(git ls-files -z | xargs -0 du -cm 2>/dev/null | tail -1 | cut -f1)
ls -1 .whl
echo "wheels ${wheels_mib} MiB + working tree ${tree_mib} MiB (limit 64 MiB together)"
if [ $((wheels_mib + tree_mib)) -gt 60 ]; then
    echo "too close to the 64 MiB that may travel: leave untracked files out or carry fewer wheels" >&2
    exit 1
fi

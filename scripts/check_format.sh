#!/usr/bin/env bash
# clang-format over all C++ in the repository (crf/, runtime/cpp/, examples/cpp/) with the repository's .clang-format.
#   scripts/check_format.sh         fail, listing each difference, unless every file is formatted (what CI runs)
#   scripts/check_format.sh --fix   format the files in place
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find crf runtime/cpp examples/cpp -type f \
  \( -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' \) | sort)
case "${1:-}" in
  "") clang-format --style=file --dry-run --Werror "${files[@]}" ;;
  --fix) clang-format --style=file -i "${files[@]}" ;;
  *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

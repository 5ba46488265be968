#!/usr/bin/env bash
# clang-format over every C++ and CUDA file in the repository with the repository's .clang-format, using the
# clang-format that the `test` extra pins (pyproject.toml), so that everyone and CI format alike.
#   scripts/check_format.sh         fail, listing each difference, unless every file is formatted (what CI runs)
#   scripts/check_format.sh --fix   format the files in place
set -euo pipefail
cd "$(dirname "$0")/.."
pinned=$(sed -n 's/^ *"clang-format==\([0-9.]*\)".*/\1/p' pyproject.toml)
# The project's venv (README's set-up) has the pinned one; $CLANG_FORMAT overrides.
clang_format=${CLANG_FORMAT:-$([[ -x .venv/bin/clang-format ]] && echo .venv/bin/clang-format || echo clang-format)}
found=$("$clang_format" --version 2>/dev/null | sed -n 's/.*clang-format version \([0-9.]*\).*/\1/p')
if [[ "$found" != "$pinned" ]]; then
  echo "error: clang-format $pinned is pinned (pyproject.toml), found '${found:-none}': pip install -e \".[test]\"" >&2
  exit 1
fi
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
  '*.c' '*.cc' '*.cpp' '*.h' '*.hpp' '*.cu' '*.cuh' | sort)
case "${1:-}" in
  "") "$clang_format" --style=file --dry-run --Werror "${files[@]}" ;;
  --fix) "$clang_format" --style=file -i "${files[@]}" ;;
  *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

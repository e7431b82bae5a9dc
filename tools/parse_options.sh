#!/usr/bin/env bash
# Turn --name value / --name=value arguments into the shell variables a recipe defined before sourcing
# this file (dashes in names become underscores). An option the recipe has no variable for is an error,
# so a typo never passes silently. Usage, after setting defaults:  . ../../tools/parse_options.sh
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      sed -n '2,/^set -/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    --*=*) name=${1%%=*}; value=${1#*=}; shift ;;
    --*) name=$1; [ $# -ge 2 ] || { echo "$0: option $name needs a value" >&2; exit 2; }; value=$2; shift 2 ;;
    *) echo "$0: unexpected argument '$1' (options are --name value)" >&2; exit 2 ;;
  esac
  name=${name#--}; name=${name//-/_}
  if ! declare -p "$name" >/dev/null 2>&1; then
    echo "$0: unknown option --$name" >&2; exit 2
  fi
  printf -v "$name" '%s' "$value"
done

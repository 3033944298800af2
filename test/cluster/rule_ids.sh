#!/usr/bin/env bash
# Every rule id cited resolves to a rule a reader can look up: docs/rules.md
# defines each id of the specification (E1-E13, R1-R12, V1-V5, G1-G9, the
# sections §1-§12, §3.1, §3.2, §11a, and the guide's sections cited) under an
# anchor of its own (<a id="E1"></a>, <a id="s3-1"></a> for §3.1) followed
# by a heading that names it, and every id cited in src/, sql/, test/,
# expected/, demo/, bench/, scripts/, docs/, README.md and CHANGELOG.md
# (comments, error hints, test descriptions, the demo, the docs) is one of
# them.  Needs no cluster.  Run by scripts/test.sh; exits 0 when every id
# resolves, 1 otherwise (naming the first place each unknown id is cited).
set -uo pipefail
cd "$(dirname "$0")/../.."

RULES=docs/rules.md
[ -f "$RULES" ] || { echo "rule ids test: $RULES is missing" >&2; exit 1; }
errors=0
fail() { echo "rule ids test: $*" >&2; errors=$((errors+1)); }

# anchor of an id: E1 -> E1, §3.1 -> s3-1, §11a -> s11a
anchor() { case $1 in §*) local a=${1#§}; echo "s${a//./-}" ;; *) echo "$1" ;; esac; }

# ids defined: an anchor line, then (after blank lines) "### <id> ..."
defined=$(awk '
  /^<a id="[^"]+"><\/a>$/ { a = $0; sub(/^<a id="/, "", a); sub(/"><\/a>$/, "", a); next }
  /^[[:space:]]*$/ { next }
  a != "" && /^### / { split($0, w, " "); print a "\t" w[2] }
  { a = "" }' "$RULES")
declare -A has
while IFS=$'\t' read -r a id; do
  [ -n "$a" ] || continue
  [ "$(anchor "$id")" = "$a" ] || fail "$RULES: the heading \"$id\" is under the anchor \"$a\", not \"$(anchor "$id")\""
  [ -z "${has[$id]:-}" ] || fail "$RULES: $id is defined twice"
  has[$id]=1
done <<< "$defined"

# every rule of the specification has its entry
expected=""
for i in $(seq 1 13); do expected+=" E$i"; done
for i in $(seq 1 12); do expected+=" R$i §$i"; done
for i in $(seq 1 5); do expected+=" V$i"; done
for i in $(seq 1 9); do expected+=" G$i"; done
expected+=" §3.1 §3.2 §11a"
for id in $expected; do
  [ -n "${has[$id]:-}" ] || fail "$RULES does not define $id"
done

# every id cited anywhere resolves
# (the files git tracks or would track: not the ignored build and test output)
dirs=(src sql test expected demo bench scripts docs README.md CHANGELOG.md)
if git rev-parse --git-dir >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- "${dirs[@]}")
else
  mapfile -t files < <(find "${dirs[@]}" -type f)
fi
cited=$( { grep -HnoIE '§ ?[0-9]+(\.[0-9]+)*[a-z]?' "${files[@]}" 2>/dev/null | sed 's/§ /§/';
           grep -HnoIE '\b[ERVG][0-9]{1,3}\b' "${files[@]}" 2>/dev/null; } )
n=0
declare -A seen
while IFS= read -r hit; do
  [ -n "$hit" ] || continue
  id=${hit##*:}; where=${hit%:*}
  n=$((n+1))
  [ -n "${has[$id]:-}" ] && continue
  [ -n "${seen[$id]:-}" ] && continue
  seen[$id]=1
  fail "$id (cited at $where) is not defined in $RULES"
done <<< "$cited"

[ "$n" -gt 1000 ] || fail "only $n citations found: the search is broken"
[ "$errors" -eq 0 ] || exit 1
echo "$n citations of ${#has[@]} rule ids, all defined in $RULES"

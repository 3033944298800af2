#!/usr/bin/env bash
# Release metadata (SPEC §12 Upgrades: every release is named by its version).
# META.json is the PGXN distribution metadata (meta-spec 1.0.0); no PGXN
# validator is packaged for Debian, so this checks what PGXN requires itself:
#   - META.json parses (python3 -m json.tool and jq);
#   - the keys the spec requires are there: name, abstract, maintainer,
#     version, license, provides (each extension with file and version),
#     meta-spec (version 1.0.0);
#   - its version is carm_deleg.control's default_version in SemVer form
#     (PGXN versions are SemVer: default_version 1.2 is 1.2.0), and so is the
#     version carm_deleg provides, whose file is that version's install script;
#   - release_status is "stable" exactly when that install script is
#     committed (frozen by `make release`), else "unstable" or "testing";
#   - the license is the PostgreSQL License, in META.json, LICENSE and README.
# Needs no cluster.  Run by scripts/test.sh; exits 0 when all hold, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."

errors=0
fail() { echo "meta test: $*" >&2; errors=$((errors+1)); }

[ -f META.json ] || { echo "meta test: META.json is missing" >&2; exit 1; }
python3 -m json.tool META.json >/dev/null || { echo "meta test: META.json is not valid JSON (python3 -m json.tool)" >&2; exit 1; }
jq -e 'type == "object"' META.json >/dev/null || { echo "meta test: META.json is not a JSON object (jq)" >&2; exit 1; }

control=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" carm_deleg.control)
[ -n "$control" ] || { echo "meta test: no default_version in carm_deleg.control" >&2; exit 1; }
# SemVer form of the control file's version: 1.2 -> 1.2.0, 1.2.3 stays
case $control in
  *.*.*) semver=$control ;;
  *.*) semver=$control.0 ;;
  *) semver=$control.0.0 ;;
esac

for key in name abstract maintainer version license provides meta-spec; do
  jq -e --arg k "$key" 'has($k) and (.[$k] != null) and (.[$k] != "") and (.[$k] != [])' META.json >/dev/null ||
    fail "the required key \"$key\" is missing or empty"
done
[ "$(jq -r '."meta-spec".version' META.json)" = 1.0.0 ] || fail "meta-spec.version is not 1.0.0"
[ "$(jq -r '.name' META.json)" = carm_deleg ] || fail "name is not carm_deleg"
version=$(jq -r '.version' META.json)
[[ $version =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] || fail "version \"$version\" is not a SemVer version"
[ "$version" = "$semver" ] ||
  fail "version is $version but carm_deleg.control's default_version is $control ($semver)"

# every provided extension has a file and a version; carm_deleg's are this version's
for ext in $(jq -r '.provides | keys[]' META.json); do
  for k in file version; do
    jq -e --arg e "$ext" --arg k "$k" '.provides[$e][$k] | type == "string" and length > 0' META.json >/dev/null ||
      fail "provides.$ext has no $k"
  done
done
[ "$(jq -r '.provides.carm_deleg.version' META.json)" = "$semver" ] ||
  fail "provides.carm_deleg.version is not $semver"
[ "$(jq -r '.provides.carm_deleg.file' META.json)" = "sql/carm_deleg--$control.sql" ] ||
  fail "provides.carm_deleg.file is not sql/carm_deleg--$control.sql"
docfile=$(jq -r '.provides.carm_deleg.docfile // empty' META.json)
[ -z "$docfile" ] || [ -f "$docfile" ] || fail "provides.carm_deleg.docfile $docfile does not exist"

# license: PostgreSQL, in the metadata, the LICENSE file and the README
[ "$(jq -r '.license' META.json)" = postgresql ] || fail "license is not \"postgresql\""
[ -f LICENSE ] && head -1 LICENSE | grep -qx 'PostgreSQL License' ||
  fail "LICENSE is missing or is not the PostgreSQL License"
grep -q 'Copyright (c) 2026, the carm_deleg authors' LICENSE 2>/dev/null ||
  fail "LICENSE does not name the copyright holder"
grep -q 'PostgreSQL License' README.md || fail "README.md does not name the license"

# release status follows the freeze: stable once the install script is committed
status=$(jq -r '.release_status // "stable"' META.json)
case $status in stable|testing|unstable) ;; *) fail "release_status \"$status\" is not stable, testing or unstable" ;; esac
if git rev-parse --git-dir >/dev/null 2>&1; then
  if git ls-files --error-unmatch "sql/carm_deleg--$control.sql" >/dev/null 2>&1; then
    [ "$status" = stable ] || fail "$control is released (its install script is committed) but release_status is $status"
  else
    [ "$status" != stable ] || fail "$control is not released (make release) but release_status is stable"
  fi
fi

# the CHANGELOG has an entry for this version
grep -qE "^## $(printf '%s' "$control" | sed 's/\./\\./g') — " CHANGELOG.md ||
  fail "CHANGELOG.md has no \"## $control — …\" entry"

[ "$errors" -eq 0 ] || exit 1
echo "META.json: carm_deleg $version ($status), license postgresql"

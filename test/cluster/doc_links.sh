#!/usr/bin/env bash
# The docs a newcomer navigates have no dead links: every relative link in
# README.md, CHANGELOG.md and docs/*.md names a file or directory of the
# repository, and every #anchor names a heading of the target (GitHub's
# slug: lower case, punctuation dropped, spaces to hyphens, -1, -2 … for
# repeats) or an explicit <a id="…"></a> (docs/rules.md's rule ids).
# Also: the README stays a first page (at most 400 lines).  Needs no
# cluster.  Run by scripts/test.sh; exits 0 when all hold, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 - <<'PY'
import os, re, sys, glob
files = ['README.md', 'CHANGELOG.md'] + sorted(glob.glob('docs/*.md'))
def anchors(path):
    out, counts, fence = set(), {}, False
    for line in open(path, encoding='utf-8'):
        if line.startswith('```'):
            fence = not fence
            continue
        if fence:
            continue
        out.update(re.findall(r'<a id="([^"]+)"></a>', line))
        m = re.match(r'#{1,6} (.*)', line)
        if m:
            s = m.group(1).strip().lower()
            s = re.sub(r'[^\w\- ]', '', s).replace(' ', '-')
            n = counts.get(s, 0); counts[s] = n + 1
            out.add(s if n == 0 else '%s-%d' % (s, n))
    return out
errors = []
for f in files:
    if not os.path.exists(f):
        errors.append('%s is missing' % f); continue
    text = open(f, encoding='utf-8').read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    text = re.sub(r'`[^`\n]*`', '', text)
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):
            continue
        path, _, frag = target.partition('#')
        dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if not os.path.exists(dest):
            errors.append('%s: link to %s: no such file' % (f, target)); continue
        if frag and dest.endswith('.md') and frag not in anchors(dest):
            errors.append('%s: link to %s: no such anchor in %s' % (f, target, dest))
n = sum(1 for _ in open('README.md', encoding='utf-8'))
if n > 400:
    errors.append('README.md has %d lines: keep it a first page (at most 400), move the rest to docs/' % n)
for e in errors:
    print('doc links test: ' + e, file=sys.stderr)
if errors:
    sys.exit(1)
print('links of %d files resolve; README.md has %d lines' % (len(files), n))
PY

#!/usr/bin/env bash
# test_docs_links.sh — every relative link in README.md and docs/*.md resolves: the
# file (or folder) exists, and a #anchor names a heading of the target Markdown file
# by GitHub's rule (lowercase; punctuation other than '-', '_' and ' ' dropped; spaces
# to '-'; repeated headings get -1, -2, ...). Links inside code are not links.
set -u
src="${CLUE_SOURCE_DIR:?CLUE_SOURCE_DIR not set}"
/usr/bin/python3 - "$src" <<'PY'
import os, re, sys, glob
root = sys.argv[1]
files = [os.path.join(root, 'README.md')] + sorted(glob.glob(os.path.join(root, 'docs', '*.md')))

def prose(text):
    """the text with fenced code blocks and inline code spans blanked"""
    out, fence = [], False
    for line in text.split('\n'):
        if line.lstrip().startswith('```'):
            fence = not fence; out.append(''); continue
        out.append('' if fence else re.sub(r'`[^`]*`', '', line))
    return out

def slug(heading):
    h = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)   # [text](link) -> text
    h = h.strip().lower()
    h = re.sub(r'[^\w\- ]', '', h)                          # keeps letters, digits, _, -, space
    return h.replace(' ', '-')

anchor_cache = {}
def anchors(path):
    if path not in anchor_cache:
        seen, out, fence = {}, set(), False
        for line in open(path, encoding='utf-8').read().split('\n'):
            if line.lstrip().startswith('```'): fence = not fence; continue
            m = None if fence else re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
            if not m: continue
            s = slug(m.group(1))
            n = seen.get(s, 0); seen[s] = n + 1
            out.add(s if n == 0 else '%s-%d' % (s, n))
        anchor_cache[path] = out
    return anchor_cache[path]

bad = checked = 0
for f in files:
    for no, line in enumerate(prose(open(f, encoding='utf-8').read()), 1):
        for target in re.findall(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)', line):
            if re.match(r'^[a-z][a-z0-9+.-]*:', target): continue   # http:, https:, mailto:
            checked += 1
            path, _, anchor = target.partition('#')
            dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
            where = '%s:%d: %s' % (os.path.relpath(f, root), no, target)
            if not os.path.exists(dest):
                print('FAIL: %s: no such file %s' % (where, os.path.relpath(dest, root))); bad += 1; continue
            if anchor:
                if not dest.endswith('.md') or os.path.isdir(dest):
                    print('FAIL: %s: anchor into a file that is not Markdown' % where); bad += 1
                elif anchor not in anchors(dest):
                    print('FAIL: %s: no heading with anchor #%s in %s' % (where, anchor, os.path.relpath(dest, root))); bad += 1
print('%d relative links checked in %d files, %d broken' % (checked, len(files), bad))
sys.exit(1 if bad else 0)
PY
rc=$?
[ "$rc" -eq 0 ] && echo "test_docs_links: PASS" || echo "test_docs_links: FAIL"
exit "$rc"

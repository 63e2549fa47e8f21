#!/usr/bin/env bash
# test_docs_help.sh — the docs list what the program accepts, no more and no less:
#   1. every option each `clue <command> --help` lists is in that command's options
#      table of docs/usage.md (section "## `clue <command>`"), and every option of
#      those tables is in --help (-h/--help itself is left out of the comparison);
#   2. the commands `clue --help` lists are the command sections of docs/usage.md;
#   3. the config keys of the key tables in src/io/config.c (cfg_keys, mod_keys) are
#      the rows of the key table of docs/config.md (`<mod>.KEY` for a modality key).
set -u
bin="${CLUE_BIN:?CLUE_BIN not set}"
src="${CLUE_SOURCE_DIR:?CLUE_SOURCE_DIR not set}"
tmp="${CLUE_TEST_TMP:-$(mktemp -d)}"
mkdir -p "$tmp"
py=/usr/bin/python3
fail=0

"$bin" --help > "$tmp/main.help" 2>&1 || { echo "FAIL: clue --help exited non-zero"; exit 1; }
cmds=$("$py" - "$tmp/main.help" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = text.split('commands:', 1)[1]
for line in block.split('\n'):
    m = re.match(r'^  ([a-z]+)\s{2,}\S', line)
    if m: print(m.group(1))
PY
)
[ -n "$cmds" ] || { echo "FAIL: no commands found in clue --help"; exit 1; }
for c in $cmds; do
  "$bin" "$c" --help > "$tmp/$c.help" 2>&1 || { echo "FAIL: clue $c --help exited non-zero"; fail=1; }
done

"$py" - "$tmp" "$src/docs/usage.md" "$src/src/io/config.c" "$src/docs/config.md" $cmds <<'PY' || fail=1
import re, sys
tmp, usage_md, config_c, config_md, cmds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
bad = 0
def report(msg):
    global bad
    bad += 1
    print('FAIL: ' + msg)

def strip_fences(text):
    out, fence = [], False
    for line in text.split('\n'):
        if line.lstrip().startswith('```'):
            fence = not fence; out.append(''); continue
        out.append('' if fence else line)
    return out

# --help: option lines are indented by 1-4 spaces and start with "-" (continuation
# lines are indented further or start with a word).
def help_options(path):
    opts = set()
    for line in open(path, encoding='utf-8').read().split('\n'):
        m = re.match(r'^ {1,4}(?:-[A-Za-z], )?(--[a-z][a-z0-9-]*)', line)
        if m: opts.add(m.group(1))
    opts.discard('--help')
    return opts

# docs/usage.md: per "## `clue CMD`" section, the first cell of each table row.
lines = strip_fences(open(usage_md, encoding='utf-8').read())
doc_opts, section = {}, None
for line in lines:
    m = re.match(r'^## `clue ([a-z]+)`\s*$', line)
    if m:
        section = m.group(1); doc_opts.setdefault(section, set()); continue
    if line.startswith('## '):
        section = None; continue
    if section and line.startswith('|'):
        first = line.split('|')[1]
        for o in re.findall(r'(?<![\w-])(--[a-z][a-z0-9-]*)', first):
            doc_opts[section].add(o)
for s in doc_opts: doc_opts[s].discard('--help')

for c in sorted(set(cmds) - set(doc_opts)):
    report('command %s (clue --help) has no section "## `clue %s`" in docs/usage.md' % (c, c))
for c in sorted(set(doc_opts) - set(cmds)):
    report('docs/usage.md documents command %s, which clue --help does not list' % c)
for c in cmds:
    if c not in doc_opts: continue
    h = help_options('%s/%s.help' % (tmp, c))
    if not h: report('clue %s --help lists no option (parser broken?)' % c)
    for o in sorted(h - doc_opts[c]):
        report('clue %s: option %s is in --help but not in docs/usage.md' % (c, o))
    for o in sorted(doc_opts[c] - h):
        report('clue %s: option %s is in docs/usage.md but not in --help' % (c, o))
    print('clue %-9s %2d options in --help, %2d in docs/usage.md' % (c, len(h), len(doc_opts[c])))

# config keys: src/io/config.c tables against docs/config.md's key table.
src = open(config_c, encoding='utf-8').read()
def table(name):
    m = re.search(r'static const key_def ' + name + r'\[\] = \{(.*?)\n\};', src, re.S)
    if not m: report('no table %s in src/io/config.c' % name); return []
    return re.findall(r'^\s*\{"([^"]+)",\s*K_', m.group(1), re.M)
code = set(table('cfg_keys')) | {'<mod>.' + k for k in table('mod_keys')}
if 'data.modalities' in code:
    code.discard('data.modalities'); code.add('data.modalities.<name>')
docs, in_table = set(), False
for line in strip_fences(open(config_md, encoding='utf-8').read()):
    if re.match(r'^\| key \| default \| meaning \|', line): in_table = True; continue
    if in_table and not line.startswith('|'): in_table = False
    if in_table:
        m = re.match(r'^\| `([^`]+)` \|', line)
        if m: docs.add(m.group(1))
if len(code) < 10: report('found only %d keys in src/io/config.c (parser broken?)' % len(code))
for k in sorted(code - docs): report('config key %s (src/io/config.c) is not in docs/config.md' % k)
for k in sorted(docs - code): report('docs/config.md documents key %s, which src/io/config.c does not have' % k)
print('config: %d keys in src/io/config.c, %d in docs/config.md' % (len(code), len(docs)))
sys.exit(1 if bad else 0)
PY
if [ "$fail" -ne 0 ]; then echo "test_docs_help: FAIL"; exit 1; fi
echo "test_docs_help: PASS"

#!/usr/bin/env bash
# CLUE_TEST_SLOW CLUE_TEST_TIMEOUT: 600 (ctest starts it early, beside the short tests)
# test_report_browser.sh — the run page in a real browser (Debian's chromium,
# headless), for a run made as tools/quickstart.sh makes it (bmmc_cite_600, 2
# ranks, 300 steps; test cells embedded and evaluated with --report):
#  1. the page holds no address of anything outside itself (no http:, https:
#     or protocol-relative src/href);
#  2. loaded in Chromium it makes no network request (Chromium's net log lists
#     no request from the page; a control page with one external image shows
#     that such a request would be seen), and it is read to its end (the DOM
#     after loading holds the footer, the charts and the maps);
#  3. the screenshot is not blank: many colours, and pixels of the maps'
#     first two palette colours (#1f6fb4, #f07f0c) in the thousands.
# CLUE_REPORT_SCREENSHOT=FILE also copies the screenshot there (docs/report.png
# is made so). Without chromium the test says so and is skipped (exit 77).
set -u
PY=/usr/bin/python3
CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$CHROMIUM" ]; then
  echo "SKIP: chromium is not installed (apt-get install chromium; tools/setup.sh installs it):" \
       "the report page was NOT checked in a browser"; exit 77
fi
if ! "$PY" -c 'import PIL' 2>/dev/null; then
  echo "SKIP: $PY lacks PIL (Debian python3-pil): the screenshot cannot be read"; exit 77
fi
data="${CLUE_SHARED_DATA:-}/bmmc_cite_600"
if [ ! -f "$data/rna.h5ad" ]; then echo "SKIP: shared data set bmmc_cite_600 not found"; exit 77; fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-report-browser}"; rm -rf "$tmp"; mkdir -p "$tmp"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
fail() { echo "FAIL: $*"; exit 1; }

$mpi -n 2 "$CLUE_BIN" train --config "$CLUE_SOURCE_DIR/configs/cite.yaml" \
  --set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad" \
  --set train.max_steps=300 --set "output.dir=$tmp/run" --quiet || fail "training"
$mpi -n 2 "$CLUE_BIN" embed --checkpoint "$tmp/run/checkpoint.h5" --out "$tmp/embed" \
  --cells test > /dev/null || fail "embed"
$mpi -n 2 "$CLUE_BIN" eval "$tmp/embed/rna.h5ad" "$tmp/embed/adt.h5ad" --label cell_type \
  --batch-key batch --report "$tmp/run" > /dev/null 2>&1 || fail "eval --report"
page="$tmp/run/report.html"
[ -s "$page" ] || fail "no page"

# 1. nothing outside the page is named
if grep -Eio "(src|href)=['\"]?(https?:|//)[^'\" >]*" "$page" | head -3 | grep -q .; then
  fail "the page names outside resources: $(grep -Eio "(src|href)=['\"]?(https?:|//)[^'\" >]*" "$page" | head -3)"
fi
grep -Eqi "https?://" "$page" && fail "the page holds an http(s) address: $(grep -Eoi "https?://[^'\" <]*" "$page" | head -3)"

# 2. loaded in Chromium: requests, and the whole page read
browse() { # page netlog screenshot dom
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --hide-scrollbars \
    --user-data-dir="$tmp/profile" --window-size=1200,4200 --log-net-log="$2" \
    --screenshot="$3" "file://$1" > /dev/null 2>&1 || return 1
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update \
    --user-data-dir="$tmp/profile" --dump-dom "file://$1" > "$4" 2> /dev/null
}
cat > "$tmp/control.html" <<'HTML'
<!DOCTYPE html><html><body><p>control</p><img src="http://127.0.0.1:9/outside.png"></body></html>
HTML
browse "$tmp/control.html" "$tmp/control-net.json" "$tmp/control.png" "$tmp/control-dom.html" ||
  fail "chromium could not load the control page"
browse "$page" "$tmp/net.json" "$tmp/shot.png" "$tmp/dom.html" || fail "chromium could not load the page"
"$PY" - "$tmp" <<'PY' || fail "browser checks"
import json, sys
from PIL import Image
t = sys.argv[1]
def page_requests(path):
    """Network requests made for a file:// page (Chromium's own background
    requests carry another isolation key)."""
    d = json.load(open(path))
    out = set()
    for e in d["events"]:
        p = e.get("params") or {}
        url = p.get("url", "")
        key = str(p.get("network_isolation_key", "")) + str(p.get("site_for_cookies", ""))
        if url.split(":")[0] in ("http", "https", "ws", "wss") and "file://" in key:
            out.add(url)
    return out
ctl = page_requests(f"{t}/control-net.json")
assert any("127.0.0.1:9" in u for u in ctl), f"the control page's request was not seen: {ctl}"
req = page_requests(f"{t}/net.json")
assert not req, f"the page made network requests: {sorted(req)[:5]}"
dom = open(f"{t}/dom.html").read()
assert "</footer>" in dom, "the page was not read to its end"
assert dom.count("<svg") >= 6 and dom.count('class="map"') >= 2, "charts or maps missing"
img = Image.open(f"{t}/shot.png").convert("RGB")
px = list(img.getdata())
colours = len(set(px))
def near(c):
    r, g, b = int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)
    return sum(1 for p in px if abs(p[0] - r) + abs(p[1] - g) + abs(p[2] - b) < 30)
blue, orange = near("#1f6fb4"), near("#f07f0c")
print(f"screenshot {img.size[0]}x{img.size[1]}: {colours} colours, {blue} blue and {orange} orange pixels")
assert colours > 200, "the screenshot is nearly blank"
assert blue > 2000 and orange > 2000, "the plot colours are missing from the screenshot"
PY
[ -n "${CLUE_REPORT_SCREENSHOT:-}" ] && cp "$tmp/shot.png" "$CLUE_REPORT_SCREENSHOT"
echo "PASS: test_report_browser"

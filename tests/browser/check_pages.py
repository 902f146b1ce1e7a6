#!/usr/bin/python3
"""check_pages.py: opens each report page in headless Chromium, driven through the Chrome
DevTools protocol (Debian's python3-websocket, nothing from a registry), and checks it through
the DOM: every image referenced loads at its natural size (those inside <noscript>, the GIFs,
included), one card and one table row per image of report.json, the slider moves every
card's frame, with scripts off the GIFs replace the player, a train page has every epoch
of its metrics CSV in its table and both charts, the given class names show as
text and no markup of theirs ran, and no console error or dialog. A screenshot of each page
goes to --shots.

usage: check_pages.py --chromium BIN --shots DIR [--text NAME]... PAGE...
Prints "ok - ..." / "not ok - ..." lines; exits 1 when a check failed, 3 when Chromium
cannot be started (the caller then skips)."""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import websocket

# Chromium as root in a closed network: no sandbox, no GPU, and none of its background
# connections (they are refused here, and would print errors).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--remote-debugging-port=0", "about:blank"]


class Browser:
    """One Chromium process and one page of it, spoken to over the DevTools websocket."""

    def __init__(self, chromium):
        self.profile = tempfile.mkdtemp(prefix="mlpviz-chromium-")
        self.proc = subprocess.Popen([chromium, "--user-data-dir=" + self.profile] +
                                     CHROMIUM_FLAGS, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.ws = websocket.create_connection(self._endpoint(), timeout=60,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": 1200, "height": 900,
                  "deviceScaleFactor": 1, "mobile": False}, session=True)

    def _endpoint(self):
        """Chromium writes its port and browser path to DevToolsActivePort once it listens."""
        path = os.path.join(self.profile, "DevToolsActivePort")
        for _ in range(300):
            if self.proc.poll() is not None:
                break
            if os.path.exists(path):
                lines = open(path).read().split()
                if len(lines) == 2:
                    return "ws://127.0.0.1:%s%s" % (lines[0], lines[1])
            time.sleep(0.1)
        raise RuntimeError("Chromium did not start (no DevToolsActivePort in 30 s)")

    def call(self, method, params=None, session=False):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.note_event(reply)

    def note_event(self, event):
        self.events.append(event)
        if event.get("method") == "Page.javascriptDialogOpening":
            # Answer it, or the page stays blocked; the check reports it.
            self.ws.send(json.dumps({"id": 0, "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": True}, "sessionId": self.session}))

    def open(self, url):
        self.events = []
        self.call("Page.navigate", {"url": url}, session=True)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.note_event(json.loads(self.ws.recv()))

    def evaluate(self, script):
        result = self.call("Runtime.evaluate", {"expression": script, "awaitPromise": True,
                                                "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError("script failed: %s" % result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path):
        shot = self.call("Page.captureScreenshot", {"format": "png",
                                                    "captureBeyondViewport": True},
                         session=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

    def problems(self):
        """Console errors, uncaught exceptions, failed loads and dialogs since open()."""
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append("exception: %s" % params["exceptionDetails"].get("text"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append("console.error: %s" % params.get("args"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append("%s (%s)" % (params["entry"].get("text"),
                                          params["entry"].get("url", "")))
            elif method == "Page.javascriptDialogOpening":
                found.append("a dialog opened: %s" % params.get("message"))
        return found

    def close(self):
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


# Every <img>, and those <noscript> would show, loaded; data-w/data-h are the stored sizes.
IMAGES_LOAD = """(async () => {
  const images = [...document.images];
  for (const n of document.querySelectorAll('noscript')) {
    const t = document.createElement('template');
    t.innerHTML = n.textContent;
    for (const i of t.content.querySelectorAll('img')) {
      const copy = new Image();
      copy.src = new URL(i.getAttribute('src'), document.baseURI).href;
      copy.dataset.w = i.dataset.w || ''; copy.dataset.h = i.dataset.h || '';
      images.push(copy);
    }
  }
  await Promise.all(images.map(i => i.complete && i.src ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); })));
  const fails = [];
  for (const i of images) {
    if (!i.naturalWidth) fails.push('does not load: ' + i.src);
    else if (i.dataset.w && (i.naturalWidth != Number(i.dataset.w) ||
                             i.naturalHeight != Number(i.dataset.h)))
      fails.push(i.src + ' is ' + i.naturalWidth + 'x' + i.naturalHeight + ', not ' +
                 i.dataset.w + 'x' + i.dataset.h);
  }
  return {count: images.length, fails: fails};
})()"""

TRAIN_PAGE = """(() => {
  const lines = [...document.querySelectorAll('svg polyline')];
  return {rows: document.querySelectorAll('table.epochs tbody tr').length,
          charts: document.querySelectorAll('svg').length, lines: lines.length,
          points: lines.map(l => l.getAttribute('points').trim().split(/ +/).length)};
})()"""

COUNTS = """({cards: document.querySelectorAll('figure.card').length,
  rows: document.querySelectorAll('table.report tbody tr').length})"""

# Stops the animation, moves the slider to the last step and back to the second, and checks
# that every card's frame image follows and loads.
SLIDER_MOVES = """(async () => {
  const player = document.getElementById('player'), slider = document.getElementById('step');
  const fails = [];
  if (player.hidden) fails.push('the player is hidden although scripts run');
  const play = document.getElementById('play');
  if (play.textContent == 'pause') play.click();
  const steps = JSON.parse(player.dataset.steps);
  for (const i of [steps.length - 1, 1]) {
    slider.value = i;
    slider.dispatchEvent(new Event('input'));
    const want = '-' + String(steps[i]).padStart(5, '0') + '.png';
    const frames = [...document.querySelectorAll('img.frame')];
    await Promise.all(frames.map(f => f.complete ? null : new Promise(r => {
      f.addEventListener('load', r); f.addEventListener('error', r); })));
    for (const f of frames) {
      if (!decodeURIComponent(f.src).endsWith(want)) fails.push(f.src + ' is not ' + want);
      else if (f.naturalWidth != Number(f.dataset.w)) fails.push(f.src + ' did not load');
    }
    if (!document.getElementById('step-label').textContent.endsWith(' ' + steps[i]))
      fails.push('the label does not say step ' + steps[i]);
  }
  return {frames: document.querySelectorAll('img.frame').length, fails: fails};
})()"""


# With scripts off: the player stays hidden, and what <noscript> holds (the GIFs) is on the
# page and loads.
WITHOUT_SCRIPTS = """(() => {
  const gifs = [...document.querySelectorAll('img')].filter(i => /[.]gif$/.test(i.src));
  return {player_hidden: document.getElementById('player').hidden,
          gifs: gifs.length, loaded: gifs.filter(i => i.complete && i.naturalWidth > 0).length,
          filmstrip: !!document.querySelector('img.filmstrip')};
})()"""


def shows_as_text(name):
    """The name is the text of some element, and its markup made no element."""
    return ("(() => { const n = %s; const shown = [...document.querySelectorAll("
            "'b, td, th, figcaption, span, code')].some(e => e.textContent === n);"
            " return {shown: shown, injected: document.querySelectorAll('img[src=\"x\"]')"
            ".length}; })()" % json.dumps(name))


class Report:
    def __init__(self):
        self.failed = 0

    def check(self, good, name, detail=""):
        print("%s - %s" % ("ok" if good else "not ok", name))
        if not good:
            self.failed += 1
            if detail:
                print("    %s" % detail)


def check_without_scripts(browser, page, name, report):
    browser.call("Emulation.setScriptExecutionDisabled", {"value": True}, session=True)
    try:
        browser.open("file://" + os.path.abspath(page))
        seen = browser.evaluate(WITHOUT_SCRIPTS)
    finally:
        browser.call("Emulation.setScriptExecutionDisabled", {"value": False}, session=True)
    report.check(seen["player_hidden"] and seen["filmstrip"] and seen["gifs"] > 0 and
                 seen["loaded"] == seen["gifs"],
                 "%s without scripts: the filmstrip and %d GIFs instead of the player" %
                 (name, seen["gifs"]), str(seen))


def check_page(browser, page, texts, shots, report):
    name = os.path.basename(page)
    browser.open("file://" + os.path.abspath(page))
    loaded = browser.evaluate(IMAGES_LOAD)
    report.check(not loaded["fails"],
                 "%s: %d images load at their size" % (name, loaded["count"]),
                 "; ".join(loaded["fails"][:5]))
    metrics = page[:-len(".html")] + ".csv"
    if os.path.exists(metrics):  # a train page: a row and a point per epoch of its CSV
        epochs = len(open(metrics).read().splitlines()) - 1
        seen = browser.evaluate(TRAIN_PAGE)
        report.check(seen["rows"] == epochs and seen["charts"] == 2 and
                     seen["points"] == [epochs] * seen["lines"] and seen["lines"] >= 2,
                     "%s: %d epochs in the table and in both charts" % (name, epochs),
                     str(seen))
    report_json = os.path.join(os.path.dirname(page), "report.json")
    if os.path.basename(page) == "index.html" and os.path.exists(report_json):
        want = len(json.load(open(report_json))["images"])
        counts = browser.evaluate(COUNTS)
        report.check(counts["cards"] == want and counts["rows"] == want,
                     "%s: one card and one table row per image (%d)" % (name, want),
                     "cards %d, rows %d" % (counts["cards"], counts["rows"]))
    if browser.evaluate("!!document.getElementById('step')"):
        moved = browser.evaluate(SLIDER_MOVES)
        report.check(not moved["fails"] and moved["frames"] > 0,
                     "%s: the slider moves %d frames" % (name, moved["frames"]),
                     "; ".join(moved["fails"][:5]))
    problems = browser.problems()  # before the page is opened again
    if browser.evaluate("!!document.getElementById('player')"):
        check_without_scripts(browser, page, name, report)
        problems += browser.problems()
        browser.open("file://" + os.path.abspath(page))
    for text in texts:
        seen = browser.evaluate(shows_as_text(text))
        report.check(seen["shown"] and not seen["injected"],
                     "%s: %r shows as text" % (name, text), str(seen))
    folder = os.path.basename(os.path.dirname(os.path.abspath(page)))
    shot = os.path.join(shots, "%s-%s" % (folder, name.replace(".html", ".png")))
    browser.screenshot(shot)
    problems += browser.problems()
    report.check(not problems, "%s: no console error (screenshot %s)" % (name, shot),
                 "; ".join(problems[:5]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--text", action="append", default=[])
    parser.add_argument("pages", nargs="+")
    args = parser.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    try:
        browser = Browser(args.chromium)
    except (RuntimeError, OSError, websocket.WebSocketException) as e:
        print("cannot run Chromium: %s" % e)
        return 3
    report = Report()
    try:
        for page in args.pages:
            check_page(browser, page, args.text, args.shots, report)
    finally:
        browser.close()
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

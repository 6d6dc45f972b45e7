"""Opens a Label Studio task's labelling page in a running headless Chromium and screenshots it,
over the Chrome DevTools Protocol (CDP). Run by tests/test_label_studio_page.py with the Label
Studio server venv's python, which has websocket-client (the project itself needs no websocket
client):

    python label_studio_page.py PORT URL USERNAME PASSWORD PAGE OUT.png COLOUR REGIONS [TIMEOUT_S]

PORT: Chromium's --remote-debugging-port; PAGE: the path of the labelling page, e.g.
/projects/1/data?task=7; COLOUR: #rrggbb of a class the pre-annotation paints; REGIONS: how many
brush regions it has. Logs in through /user/login/, opens PAGE at 1400x900, waits until the image
is loaded, the region list has REGIONS brush regions and a drawing layer (a Konva canvas) holds
pixels of COLOUR, then saves the PNG and prints one JSON line: {"image": [x, y, width, height]
of the image on the page (CSS pixels = screenshot pixels), "regions": the region list's titles,
"text": the page's text, "seconds": how long the page took}. Exits non-zero where it times out.
"""

import base64
import json
import sys
import time
import urllib.request

WIDTH, HEIGHT = 1400, 900

# The state of the labelling editor: the task's image (a blob: URL once loaded), the region
# list's brush regions, and how many pixels of the drawing layers have the colour (r, g, b).
STATE_JS = """(([r, g, b]) => {
  const image = Array.from(document.images).find(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth);
  const box = image ? image.getBoundingClientRect() : null;
  let coloured = 0;
  for (const canvas of document.querySelectorAll('.konvajs-content canvas')) {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < d.length; i += 4)
      if (d[i + 3] && Math.abs(d[i] - r) < 16 && Math.abs(d[i + 1] - g) < 16 && Math.abs(d[i + 2] - b) < 16) coloured++;
  }
  return {image: box && [box.x, box.y, box.width, box.height], coloured,
          brush: document.querySelectorAll('.lsf-tree__node_type_brushregion').length,
          regions: Array.from(document.querySelectorAll('.lsf-outliner-item__title')).map(e => e.innerText.trim()),
          text: document.body.innerText};
})(%s)"""


class DevTools:
    """A CDP connection to Chromium's first page target (waits for the endpoint up to 30 s)."""

    def __init__(self, port: int):
        import websocket

        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                    pages = [t for t in json.load(answer) if t["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"Chromium's DevTools endpoint on port {port} did not answer in 30 s")
            time.sleep(0.2)
        # No Origin header: Chromium refuses websocket connections from origins it does not allow.
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], suppress_origin=True, timeout=60)
        self.last_id = 0

    def __call__(self, method: str, **params) -> dict:
        """Sends a command and returns its result (events in between are dropped)."""
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (None where it throws, e.g. while
        the page navigates)."""
        result = self("Runtime.evaluate", expression=expression, returnByValue=True)
        return None if "exceptionDetails" in result else result["result"].get("value")

    def wait(self, expression: str, timeout_s: float, what: str):
        """Polls `expression` every 0.25 s until it is truthy; returns its value, SystemExit
        naming `what` after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out after {timeout_s} s waiting for {what} (page: "
                                 f"{self.evaluate('location.href')})")
            time.sleep(0.25)
        return value


def main(port, url, username, password, page, out, colour, regions, timeout_s="60"):
    timeout_s, regions = float(timeout_s), int(regions)
    rgb = [int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)]
    browser = DevTools(int(port))
    browser("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
    # Log in: Django's form (its CSRF token is in a hidden field), filled and submitted in the page
    # (a profile still logged in is sent on from /user/login/).
    browser("Page.navigate", url=f"{url}/user/login/")
    on_login = browser.wait(f"document.readyState === 'complete' && location.href.startsWith({json.dumps(url)}) && "
                            "(document.forms[0] && document.forms[0].email ? 'form' : "
                            "!location.pathname.startsWith('/user/login') && 'in')", timeout_s, "the login form")
    if on_login == "form":
        browser.evaluate(f"(f => {{ f.email.value = {json.dumps(username)}; f.password.value = "
                         f"{json.dumps(password)}; f.submit(); }})(document.forms[0])")
        browser.wait("document.readyState === 'complete' && !location.pathname.startsWith('/user/login')", timeout_s,
                     "the login to go through")
    start = time.monotonic()
    browser("Page.navigate", url=f"{url}{page}")
    state = browser.wait(f"(s => s.image && s.brush >= {regions} && s.coloured > 0 && s)({STATE_JS % json.dumps(rgb)})",
                         timeout_s, f"the image, {regions} brush regions and pixels of {colour}")
    seconds = time.monotonic() - start
    time.sleep(0.5)  # a last repaint (the regions' fade-in)
    with open(out, "wb") as f:
        f.write(base64.b64decode(browser("Page.captureScreenshot", format="png")["data"]))
    print(json.dumps({"image": state["image"], "regions": state["regions"], "text": state["text"],
                      "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main(*sys.argv[1:])

// The status page's only script: the sliders, Apply, and live updates.
// The server renders everything shown; on each event of /api/v1/events
// this fetches the page again and swaps in its <main>, keeping a slider
// the user moved and has not applied yet. Text from the API goes in with
// textContent, never as HTML.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="muster-csrf"]').content;
  const status = document.getElementById("live-status");

  function wire(root) {
    for (const form of root.querySelectorAll("form.scale")) {
      const input = form.querySelector('input[type="range"]');
      const target = form.querySelector('[data-role="target"]');
      const result = form.querySelector('[data-role="result"]');
      input.addEventListener("input", function () {
        target.textContent = input.value;
        form.dataset.dirty = input.value;
      });
      form.addEventListener("submit", async function (ev) {
        ev.preventDefault();
        const service = form.dataset.service;
        const count = Number(input.value);
        result.textContent = "writing the file…";
        try {
          const r = await fetch("/api/v1/services/" + encodeURIComponent(service) + "/scale", {
            method: "POST",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-Muster-Csrf": csrf },
            body: JSON.stringify({ count: count }),
          });
          const body = await r.json().catch(function () { return {}; });
          if (r.ok) {
            delete form.dataset.dirty;
            result.textContent = body.changed
              ? "file rewritten: " + service + " = " + count + "; the daemon applies it"
              : service + " already has " + count;
          } else {
            result.textContent = "refused: " + (body.error || r.status);
          }
        } catch (e) {
          result.textContent = "the daemon did not answer: " + e;
        }
      });
    }
  }

  let pending = null;
  async function refresh() {
    pending = null;
    const r = await fetch("/", { credentials: "same-origin" });
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("live");
    const current = document.getElementById("live");
    if (!fresh || !current) return;
    // A slider moved but not applied stays where the user left it, and
    // so does the outcome shown beside it.
    for (const old of current.querySelectorAll("form.scale")) {
      const next = fresh.querySelector('form.scale[data-service="' + CSS.escape(old.dataset.service) + '"]');
      if (!next) continue;
      next.querySelector('[data-role="result"]').textContent =
        old.querySelector('[data-role="result"]').textContent;
      if (old.dataset.dirty !== undefined) {
        const input = next.querySelector('input[type="range"]');
        input.max = Math.max(Number(input.max), Number(old.dataset.dirty));
        input.value = old.dataset.dirty;
        next.querySelector('[data-role="target"]').textContent = old.dataset.dirty;
        next.dataset.dirty = old.dataset.dirty;
      }
    }
    current.replaceWith(fresh);
    wire(fresh);
  }

  wire(document);
  const events = new EventSource("/api/v1/events");
  events.onopen = function () { status.textContent = "live"; };
  events.onerror = function () { status.textContent = "reconnecting…"; };
  events.onmessage = function () {
    if (pending === null) pending = setTimeout(refresh, 150);
  };
})();

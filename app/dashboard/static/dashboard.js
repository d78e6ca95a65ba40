// Lethe dashboard: progressive enhancement only. Every page and form works without this file.
//  - [data-live-src]: the region re-fetches its server-rendered fragment every few seconds
//    while the tab is visible, and stops once the fragment carries [data-live-settled].
//  - [data-refresh-src]: the region re-fetches itself when a live region's [data-status]
//    changes (the request's allowed actions), unless one of its fields is being edited.
//  - form[data-confirm]: asks before submitting.
"use strict";
(function () {
  const announcer = document.getElementById("live-announcer");

  function statusOf(root) {
    const el = root.querySelector("[data-status]");
    return el ? el.dataset.status : null;
  }

  async function fetchFragment(url) {
    const response = await fetch(url, {
      headers: { "X-Lethe-Live": "1" }, credentials: "same-origin", cache: "no-store",
    });
    if (response.status === 401) { window.location.reload(); return null; }
    return response.ok ? response.text() : null;
  }

  function live(region) {
    const every = Number(region.dataset.liveEvery || 2000);
    let busy = false;
    async function tick() {
      if (busy) return;
      busy = true;
      try {
        if (!document.hidden) {
          const html = await fetchFragment(region.dataset.liveSrc);
          if (html !== null && html !== region.dataset.liveLast) {
            const before = statusOf(region);
            region.innerHTML = html;
            region.dataset.liveLast = html;
            const after = statusOf(region);
            if (before && after && before !== after) {
              if (announcer) announcer.textContent = "Status changed to " + after.replace(/_/g, " ");
              document.dispatchEvent(new CustomEvent("lethe:status", { detail: after }));
            }
          }
        }
      } catch (err) {
        // A network blip: the next tick tries again.
      } finally {
        busy = false;
      }
      if (!region.querySelector("[data-live-settled]")) window.setTimeout(tick, every);
    }
    if (!region.querySelector("[data-live-settled]")) window.setTimeout(tick, every);
  }

  function edited(region) {
    return Array.from(region.querySelectorAll("textarea, input[type=text]")).some(
      (field) => field.value !== field.defaultValue);
  }

  function refreshOnStatus(region) {
    document.addEventListener("lethe:status", async () => {
      if (edited(region) || region.contains(document.activeElement)) return;
      const html = await fetchFragment(region.dataset.refreshSrc);
      if (html !== null) region.innerHTML = html;
    });
  }

  document.querySelectorAll("[data-live-src]").forEach(live);
  document.querySelectorAll("[data-refresh-src]").forEach(refreshOnStatus);
  document.addEventListener("submit", (event) => {
    const message = event.target.dataset ? event.target.dataset.confirm : null;
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();

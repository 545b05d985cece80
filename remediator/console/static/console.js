// The console works without this script. With it: local-time hints beside UTC times, and the part of the page
// named by data-refresh-part (the incident list, the approvals waiting) refreshes itself every data-refresh
// seconds (fetched from the server, already escaped, same origin).
"use strict";
function localHints(root) {
  for (const node of root.querySelectorAll("time[datetime]")) {
    if (node.dataset.hinted) continue;
    const when = new Date(node.getAttribute("datetime"));
    if (isNaN(when)) continue;
    const hint = document.createElement("span");
    hint.className = "local";
    hint.textContent = "(" + when.toLocaleString() + " local)";
    node.after(hint);
    node.dataset.hinted = "1";
  }
}
document.addEventListener("DOMContentLoaded", () => {
  localHints(document);
  const seconds = Number(document.body.dataset.refresh || 0);
  if (!seconds) return;
  setInterval(async () => {
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const part = document.body.dataset.refreshPart;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById(part);
      const current = document.getElementById(part);
      if (fresh && current) { current.replaceWith(fresh); localHints(fresh); }
    } catch (error) { /* the next turn tries again */ }
  }, seconds * 1000);
});

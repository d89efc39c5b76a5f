// Export progress: poll the batch's progress until it is no longer queued or running, then reload the page.
(function () {
  "use strict";
  var box = document.getElementById("batch-progress");
  if (!box) return;
  var status = box.getAttribute("data-status");
  if (status !== "queued" && status !== "running") return;
  var bar = box.querySelector("progress");
  var text = box.querySelector('[data-role="text"]');

  function poll() {
    fetch(box.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        if (p.total) bar.max = p.total;
        bar.value = p.done;
        text.textContent = (p.stage_label || "") + " " + p.done + " / " + p.total;
        if (p.status !== "queued" && p.status !== "running") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();

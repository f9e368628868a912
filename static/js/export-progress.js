// The export job page: while the job is queued or running, ask its status every second and move
// the progress bar; once it is done or failed, reload the page, which then shows the download
// link or the error and a retry button. Same-origin fetch only (the CSP allows nothing else).
(function () {
  "use strict";
  var box = document.getElementById("export-job");
  if (!box) return;
  var state = box.getAttribute("data-status");
  if (state === "done" || state === "failed") return;
  var url = box.getAttribute("data-status-url");
  var bar = box.querySelector(".progress-bar");
  var meter = document.getElementById("export-progress");
  var label = document.getElementById("export-status");
  var rows = document.getElementById("export-rows");
  var delay = 1000;

  function show(job) {
    bar.style.width = job.percent + "%";
    bar.textContent = job.percent + "%";
    meter.setAttribute("aria-valuenow", String(job.percent));
    label.textContent = job.label;
    rows.textContent = job.rows_text;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (job) {
        show(job);
        if (job.status === "done" || job.status === "failed") {
          window.location.reload();
          return;
        }
        delay = 1000;
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 15000); // the network or the server hiccuped: ask less often
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, delay);
})();

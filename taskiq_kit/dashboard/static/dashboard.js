/* taskiq-kit dashboard: live progress, aborts without a reload, confirmations, refreshes.
   Hand-written, no build step, no other origin. The pages work without it (plain forms). */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.content : "";
  var base = document.body.dataset.base || "";
  var FINAL = ["success", "failure", "aborted", "expired"];

  function flash(text, ok) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = text;
    box.classList.toggle("bad", !ok);
    box.hidden = false;
  }

  function setStatus(holder, status) {
    holder.dataset.status = status;
    holder.querySelectorAll('[data-role="status"]').forEach(function (badge) {
      badge.textContent = status;
      badge.className = "status s-" + status;
    });
    if (FINAL.indexOf(status) >= 0) {
      holder.querySelectorAll('form[data-js="abort"]').forEach(function (form) { form.remove(); });
      if (holder.hasAttribute("data-reload-on-final")) { window.location.reload(); }
    }
  }

  function setProgress(holder, data) {
    if (data.fraction !== null && data.fraction !== undefined) {
      var pct = Math.round(data.fraction * 100);
      holder.querySelectorAll('[data-role="bar"]').forEach(function (bar) {
        bar.value = pct;
        bar.textContent = pct + " %";
      });
      holder.querySelectorAll('[data-role="pct"]').forEach(function (el) { el.textContent = pct + " %"; });
    }
    holder.querySelectorAll('[data-role="message"]').forEach(function (el) { el.textContent = data.message || ""; });
    if (holder.dataset.status === "pending" || holder.dataset.status === "scheduled") {
      setStatus(holder, "started");
    }
  }

  /* One event stream for every unfinished task on the page. */
  function follow() {
    var holders = Array.prototype.slice.call(document.querySelectorAll("[data-live][data-task-id]"));
    if (!holders.length || !window.EventSource) { return; }
    var params = new URLSearchParams();
    holders.forEach(function (holder) { params.append("id", holder.dataset.taskId); });
    var source = new EventSource(base + "/live?" + params.toString());
    function each(id, fn) {
      holders.forEach(function (holder) { if (holder.dataset.taskId === id) { fn(holder); } });
    }
    source.addEventListener("progress", function (event) {
      var data = JSON.parse(event.data);
      each(data.task_id, function (holder) { setProgress(holder, data); });
    });
    source.addEventListener("status", function (event) {
      var data = JSON.parse(event.data);
      if (data.status) { each(data.task_id, function (holder) { setStatus(holder, data.status); }); }
    });
    source.addEventListener("done", function () { source.close(); });
  }

  async function abort(form, button) {
    if (button) { button.disabled = true; }
    try {
      var response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { "Accept": "application/json", "X-CSRF-Token": token },
        credentials: "same-origin"
      });
      var data = await response.json();
      flash(data.message, data.ok);
      var holder = form.closest("[data-task-id]");
      if (holder && data.status) { setStatus(holder, data.status); }
    } catch (error) {
      flash("Abort failed: " + error, false);
    }
    if (button && button.isConnected) { button.disabled = false; }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var question = (button && button.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (form.dataset.js === "abort") {
      event.preventDefault();
      abort(form, button);
    }
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.dataset || !box.dataset.selectAll) { return; }
    box.form.querySelectorAll('input[name="' + box.dataset.selectAll + '"]').forEach(function (item) {
      item.checked = box.checked;
    });
  });

  /* Sections that refresh themselves, unless the keyboard focus is inside them. */
  document.querySelectorAll("[data-refresh]").forEach(function (section) {
    var every = Math.max(1, parseFloat(section.dataset.interval || "5")) * 1000;
    window.setInterval(async function () {
      if (document.hidden || section.contains(document.activeElement)) { return; }
      try {
        var response = await fetch(section.dataset.refresh, { credentials: "same-origin" });
        if (response.ok) { section.innerHTML = await response.text(); }
      } catch (error) { /* offline for a moment: try again next time */ }
    }, every);
  });

  follow();
}());

// Every htmx request shows that it is working and, when it fails, says so on the page.
//
// An action (a form submitted, a link or button clicked) marks its element busy and disables
// the form's submit buttons until the answer is in; the page shows a thin progress bar. A
// failure (a 5xx or other refused answer, no connection, a timeout) puts one message in the
// page's message area (#messages); nothing is swapped, so a form keeps what was typed.
// Background requests (polling, previews, suggestions) show no progress, and their failures
// share one quieter message that goes away when one of them succeeds again.
(function () {
  "use strict";
  let inFlight = 0;

  function isAction(detail) {
    const event = detail.requestConfig && detail.requestConfig.triggeringEvent;
    return Boolean(event && (event.type === "submit" || event.type === "click"));
  }

  function say(key, text) {
    const box = document.getElementById("messages");
    if (!box) return;
    let line = box.querySelector(`[data-failure="${key}"]`);
    if (!line) {
      line = document.createElement("p");
      line.className = "message error";
      line.setAttribute("role", "alert");
      line.dataset.failure = key;
      box.appendChild(line);
    }
    line.textContent = text;
  }

  function unsay(key) {
    const line = document.querySelector(`#messages [data-failure="${key}"]`);
    if (line) line.remove();
  }

  function submitButtons(elt) {
    const form = elt.closest("form");
    return form ? Array.from(form.querySelectorAll("button[type=submit], button:not([type])")) : [];
  }

  function begin(detail) {
    const elt = detail.elt;
    elt.setAttribute("aria-busy", "true");
    submitButtons(elt).forEach((button) => {
      if (!button.disabled) {
        button.disabled = true;
        button.dataset.busyDisabled = "1";
      }
    });
    inFlight += 1;
    document.documentElement.classList.add("busy");
  }

  function end(detail) {
    const elt = detail.elt;
    elt.removeAttribute("aria-busy");
    // The buttons may have been swapped out with their form; those still here come back.
    document.querySelectorAll("button[data-busy-disabled]").forEach((button) => {
      if (!button.closest("[aria-busy=true]")) {
        button.disabled = false;
        delete button.dataset.busyDisabled;
      }
    });
    inFlight = Math.max(0, inFlight - 1);
    if (!inFlight) document.documentElement.classList.remove("busy");
  }

  function failure(detail, text) {
    if (isAction(detail)) {
      say("action", `${text} What you entered is still there; try again.`);
    } else {
      say("background", `Live updates are paused: ${text.charAt(0).toLowerCase()}${text.slice(1)}`
        + " They resume by themselves.");
    }
  }

  document.addEventListener("htmx:beforeRequest", (event) => {
    // A poll rests while its page is hidden (a trigger filter would do it, but htmx evaluates
    // those as code, which the Content-Security-Policy rightly refuses).
    const elt = event.detail.elt;
    if (elt.hasAttribute("data-poll-when-visible") && document.visibilityState !== "visible") {
      event.preventDefault();
      return;
    }
    if (isAction(event.detail)) begin(event.detail);
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    const detail = event.detail;
    if (isAction(detail)) end(detail);
    if (detail.successful) unsay(isAction(detail) ? "action" : "background");
  });
  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    failure(event.detail, status >= 500
      ? `The server could not complete the request (error ${status}).`
      : `The server refused the request (error ${status}); reloading the page may help.`);
  });
  document.addEventListener("htmx:sendError", (event) => {
    failure(event.detail, "The server could not be reached.");
  });
  document.addEventListener("htmx:timeout", (event) => {
    failure(event.detail, "The server took too long to answer.");
  });
})();

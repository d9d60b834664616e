// Tollgate UI enhancements. Every page works without this file; it only adds
// Copy buttons to read-only link fields and shows dates in the viewer's local time.
(function () {
  "use strict";

  function fallbackCopy(input) {
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  function announce(button, status, text) {
    button.textContent = text;
    status.textContent = text === "Copied" ? "Copied to the clipboard" : "";
    window.setTimeout(function () {
      button.textContent = "Copy";
      status.textContent = "";
    }, 2000);
  }

  function enhanceCopy(input) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn";
    button.textContent = "Copy";
    var status = document.createElement("span");
    status.className = "sr-only";
    status.setAttribute("role", "status");
    input.insertAdjacentElement("afterend", button);
    button.insertAdjacentElement("afterend", status);

    input.addEventListener("focus", function () {
      input.select();
    });
    button.addEventListener("click", function () {
      var value = input.value;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(value).then(
          function () {
            announce(button, status, "Copied");
          },
          function () {
            announce(button, status, fallbackCopy(input) ? "Copied" : "Press Ctrl+C");
          }
        );
      } else {
        announce(button, status, fallbackCopy(input) ? "Copied" : "Press Ctrl+C");
      }
    });
  }

  function localizeTimes() {
    if (!window.Intl || !Intl.DateTimeFormat) {
      return;
    }
    var format = new Intl.DateTimeFormat(undefined, {
      year: "numeric",
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit"
    });
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var when = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        times[i].textContent = format.format(when);
      }
    }
  }

  function init() {
    var inputs = document.querySelectorAll("input[data-copy]");
    for (var i = 0; i < inputs.length; i++) {
      enhanceCopy(inputs[i]);
    }
    localizeTimes();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

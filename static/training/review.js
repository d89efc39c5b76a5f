// Keyboard for the review screen: A approve, R reject, E edit the chosen text, S skip.
// In the text box: Ctrl/Cmd+Enter saves the edit, Esc leaves the box so the letter keys work again.
(function () {
  "use strict";
  var form = document.getElementById("review-form");
  if (!form) return;
  var text = document.getElementById("chosen");

  function press(key) {
    var button = form.querySelector('button[data-key="' + key + '"]');
    if (button && !button.disabled) {
      button.click();
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.tagName === "SELECT");
    if (typing) {
      if (event.key === "Escape") {
        target.blur();
        event.preventDefault();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target === text) {
        press("e");
        event.preventDefault();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    var key = event.key.toLowerCase();
    if (key === "e" && text) {
      text.focus();
      text.setSelectionRange(text.value.length, text.value.length);
      event.preventDefault();
    } else if ((key === "a" || key === "r" || key === "s") && press(key)) {
      event.preventDefault();
    }
  });

  // One submission per page: a double press must not decide twice (the revision check would refuse it anyway).
  form.addEventListener("submit", function () {
    window.setTimeout(function () {
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    }, 0);
  });
})();

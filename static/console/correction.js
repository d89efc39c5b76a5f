/* Correction form: keyboard shortcuts. Digits 0-4 rate the attribute row that has focus (and move to the next
 * row), Alt+N picks "no FAQ covers this", Ctrl+Enter saves. Errors from the server get focus. */
(function () {
  "use strict";
  var form = document.querySelector('[data-testid="correction-form"]');
  if (!form) return;
  var rows = Array.prototype.slice.call(form.querySelectorAll("tr[data-attribute]"));

  rows.forEach(function (row, i) {
    row.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey || !/^[0-4]$/.test(e.key)) return;
      var radio = row.querySelector('input[type="radio"][value="' + e.key + '"]');
      if (!radio) return;
      e.preventDefault();
      radio.checked = true;
      var next = rows[i + 1] && (rows[i + 1].querySelector("input:checked") || rows[i + 1].querySelector("input"));
      if (next) next.focus();
    });
  });

  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.altKey && (e.key === "n" || e.key === "N")) {
      e.preventDefault();
      var select = form.querySelector('select[name="faq_choice"]');
      if (select) {
        select.value = "__none__";
        select.focus();
      }
    }
  });

  var errors = document.querySelector('[data-testid="form-errors"]');
  if (errors) errors.focus();
})();

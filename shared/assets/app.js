// The pages' only script, a small enhancement: everything works without it. It warns of
// Caps Lock on password fields, offers "show password", and copies or prints codes.
(function () {
  "use strict";

  document.querySelectorAll("input[type=password]").forEach(function (input) {
    var warning = document.createElement("p");
    warning.className = "caps-warning";
    warning.id = input.id + "-caps";
    warning.setAttribute("role", "status");
    warning.hidden = true;
    warning.textContent = "Caps Lock is on.";
    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "show-password";
    toggle.textContent = "Show password";
    toggle.setAttribute("aria-controls", input.id);
    toggle.setAttribute("aria-pressed", "false");
    toggle.addEventListener("click", function () {
      var shown = input.type === "text";
      input.type = shown ? "password" : "text";
      toggle.textContent = shown ? "Show password" : "Hide password";
      toggle.setAttribute("aria-pressed", shown ? "false" : "true");
    });
    input.after(toggle, warning);
    var check = function (event) {
      if (event.getModifierState) {
        warning.hidden = !event.getModifierState("CapsLock");
      }
    };
    input.addEventListener("keyup", check);
    input.addEventListener("keydown", check);
    input.addEventListener("blur", function () { warning.hidden = true; });
  });

  // A form's password goes back to hidden before it is sent.
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("input.password").forEach(function (input) { input.type = "password"; });
    });
  });

  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    button.hidden = false;
    var label = button.textContent;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.innerText.trim()).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  });

  document.querySelectorAll("button.print").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();

/*
 * One-tag chat widget. A site adds
 *
 *   <script src="https://CHAT-HOST/static/chat/embed.js" defer></script>
 *
 * and gets a floating launcher button that opens the chat (CHAT-HOST/chat/embed/) in an iframe. The chat
 * server must list the site's origin in CHAT_EMBED_ALLOWED_ORIGINS, or the browser refuses to show the frame.
 *
 * Optional attributes on the script tag:
 *   data-label="チャットで質問する"   accessible name of the launcher button
 *   data-position="left"              bottom-left instead of bottom-right
 *   data-chat-url="https://.../chat/embed/"   the chat page, if it isn't beside /static/ on the script's host
 *
 * Nothing here touches the host page's styles: the widget lives in a shadow root and styles itself through
 * element.style, which a host page's Content-Security-Policy also allows. The chat itself (and everything the
 * customer types) stays inside the cross-origin iframe.
 */
(function () {
  "use strict";

  if (window.__karakuriChatWidget) {
    return; // the tag was included twice
  }
  window.__karakuriChatWidget = true;

  var script =
    document.currentScript ||
    (function () {
      var found = document.querySelectorAll('script[src*="/chat/embed"]');
      return found.length ? found[found.length - 1] : null;
    })();
  if (!script || !script.src) {
    return;
  }

  var scriptUrl = new URL(script.src, window.location.href);
  var chatUrl = script.getAttribute("data-chat-url");
  if (!chatUrl) {
    // https://HOST[/prefix]/static/chat/embed[.hash].js -> https://HOST[/prefix]/chat/embed/
    var prefix = scriptUrl.pathname.replace(/static\/chat\/embed(\.[0-9a-f]+)?\.js$/, "");
    chatUrl = scriptUrl.origin + (prefix.charAt(prefix.length - 1) === "/" ? prefix : prefix + "/") + "chat/embed/";
  }
  var chatOrigin = new URL(chatUrl, window.location.href).origin;
  var label = script.getAttribute("data-label") || "チャットで質問する";
  var closeLabel = "チャットを閉じる";
  var frameTitle = "カスタマーサポートチャット";
  var side = script.getAttribute("data-position") === "left" ? "left" : "right";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var PRIMARY = "#1f5fbf";

  function css(node, styles) {
    Object.keys(styles).forEach(function (k) {
      node.style.setProperty(k, styles[k]);
    });
    return node;
  }

  function icon(d) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", d);
    svg.appendChild(path);
    return svg;
  }

  var CHAT_ICON =
    "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-4.5 3.6A.9.9 0 0 1 3 20.9V6a2 2 0 0 1 1-2zm3 5.5a1.5 1.5 0 1 0 " +
    "0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z";
  var CLOSE_ICON =
    "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6l5.6-5.6L5 6.4z";

  function mount() {
    var host = document.createElement("div");
    host.id = "karakuri-chat-widget";
    host.setAttribute("data-testid", "chat-widget");
    css(host, { position: "fixed", "z-index": "2147483000", bottom: "0", width: "0", height: "0" });
    host.style.setProperty(side, "0");
    var shadow = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;

    var panel = document.createElement("div");
    panel.setAttribute("data-testid", "chat-panel");
    panel.hidden = true;
    css(panel, {
      position: "fixed",
      bottom: "92px",
      width: "380px",
      height: "600px",
      "max-height": "calc(100vh - 112px)",
      "border-radius": "16px",
      overflow: "hidden",
      background: "#fff",
      "box-shadow": "0 12px 40px rgba(15, 25, 45, 0.28)",
    });
    panel.style.setProperty(side, "20px");

    var launcher = document.createElement("button");
    launcher.type = "button";
    launcher.setAttribute("data-testid", "chat-launcher");
    launcher.setAttribute("aria-label", label);
    launcher.setAttribute("aria-expanded", "false");
    launcher.title = label;
    css(launcher, {
      position: "fixed",
      bottom: "20px",
      width: "60px",
      height: "60px",
      padding: "0",
      border: "0",
      "border-radius": "50%",
      background: PRIMARY,
      color: "#fff",
      cursor: "pointer",
      display: "grid",
      "place-items": "center",
      "box-shadow": "0 6px 20px rgba(15, 25, 45, 0.3)",
    });
    launcher.style.setProperty(side, "20px");
    launcher.appendChild(icon(CHAT_ICON));

    var iframe = null;

    function layout() {
      var small = window.matchMedia("(max-width: 480px)").matches;
      var other = side === "left" ? "right" : "left";
      if (small) {
        // The whole screen (left/right rather than 100vw, which would include a scrollbar and overflow).
        css(panel, { top: "0", bottom: "0", left: "0", right: "0", width: "auto", height: "auto" });
        css(panel, { "max-height": "none", "max-width": "none", "border-radius": "0" });
      } else {
        css(panel, { top: "auto", bottom: "92px", width: "380px", height: "600px", "border-radius": "16px" });
        css(panel, { "max-height": "calc(100vh - 112px)", "max-width": "calc(100vw - 40px)" });
        panel.style.setProperty(side, "20px");
        panel.style.removeProperty(other);
      }
      // On a phone the open panel covers the screen; its own close button (in the chat header) closes it.
      launcher.style.setProperty("display", small && !panel.hidden ? "none" : "grid");
    }

    function open() {
      if (!iframe) {
        // Created on first open: a page view that never opens the chat costs the chat server nothing.
        iframe = document.createElement("iframe");
        iframe.src = chatUrl;
        iframe.title = frameTitle;
        iframe.setAttribute("data-testid", "chat-iframe");
        iframe.setAttribute("referrerpolicy", "strict-origin");
        css(iframe, { width: "100%", height: "100%", border: "0", display: "block" });
        iframe.addEventListener("load", function () {
          if (!panel.hidden) {
            iframe.contentWindow.postMessage({ type: "karakuri-chat:opened" }, chatOrigin);
          }
        });
        panel.appendChild(iframe);
      }
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      launcher.setAttribute("aria-label", closeLabel);
      launcher.title = closeLabel;
      launcher.replaceChildren(icon(CLOSE_ICON));
      layout();
      iframe.focus();
      try {
        iframe.contentWindow.postMessage({ type: "karakuri-chat:opened" }, chatOrigin);
      } catch (e) {
        /* not loaded yet: the load handler does it */
      }
    }

    function close() {
      panel.hidden = true;
      launcher.setAttribute("aria-expanded", "false");
      launcher.setAttribute("aria-label", label);
      launcher.title = label;
      launcher.replaceChildren(icon(CHAT_ICON));
      layout();
      launcher.focus();
    }

    launcher.addEventListener("click", function () {
      if (panel.hidden) {
        open();
      } else {
        close();
      }
    });

    window.addEventListener("message", function (e) {
      if (!iframe || e.source !== iframe.contentWindow || e.origin !== chatOrigin) {
        return;
      }
      if (e.data && e.data.type === "karakuri-chat:close") {
        close();
      }
    });

    window.addEventListener("resize", layout);
    shadow.appendChild(panel);
    shadow.appendChild(launcher);
    document.body.appendChild(host);
    layout();
  }

  if (document.body) {
    mount();
  } else {
    document.addEventListener("DOMContentLoaded", mount);
  }
})();

// Live lists without a full reload: every few seconds each [data-live] region is fetched
// again and swapped in, unless the person is typing in it or has changed a field there.
(function () {
  "use strict";
  var PERIOD_MS = 10000;
  var busy = false;

  function touched(region) {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) {
      return true;
    }
    var fields = region.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "hidden") continue;
      if (f.tagName === "SELECT") {
        for (var j = 0; j < f.options.length; j++) {
          if (f.options[j].selected !== f.options[j].defaultSelected) return true;
        }
      } else if (f.value !== f.defaultValue) {
        return true;
      }
    }
    var open = region.querySelectorAll("details[open]");
    return open.length > 0;
  }

  function refresh() {
    var regions = document.querySelectorAll("[data-live][id]");
    if (!regions.length || busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("stale");
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions.forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next && !touched(region) && next.innerHTML !== region.innerHTML) {
            region.innerHTML = next.innerHTML;
          }
        });
      })
      .catch(function () { /* the next round tries again */ })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, PERIOD_MS);
})();

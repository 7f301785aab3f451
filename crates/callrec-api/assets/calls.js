// callrec portal: keep the calls in progress up to date from the server's events. The page
// refreshes itself without JavaScript (a <noscript> meta refresh); this replaces the list in
// place instead. The list arrives already rendered, every value escaped by the server.
(function () {
  "use strict";
  var list = document.getElementById("calls");
  if (!list || !window.EventSource) {
    return;
  }
  var events = new EventSource("/calls/events");
  events.addEventListener("calls", function (e) {
    list.innerHTML = e.data;
  });
})();

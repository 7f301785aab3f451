// callrec portal: the player's -10 s / +10 s buttons and speed choice. First-party, no
// dependencies; the page plays, seeks and downloads without it (the buttons stay hidden).
(function () {
  "use strict";
  var controls = document.getElementById("player-controls");
  var audio = document.querySelector("audio");
  if (!controls || !audio) {
    return;
  }
  function seek(by) {
    var end = isFinite(audio.duration) ? audio.duration : Infinity;
    audio.currentTime = Math.max(0, Math.min(end, audio.currentTime + by));
  }
  document.getElementById("back10").addEventListener("click", function () { seek(-10); });
  document.getElementById("fwd10").addEventListener("click", function () { seek(10); });
  var speed = document.getElementById("speed");
  speed.addEventListener("change", function () {
    var rate = parseFloat(speed.value);
    if (rate >= 0.5 && rate <= 2) {
      audio.playbackRate = rate;
    }
  });
  controls.hidden = false;
})();

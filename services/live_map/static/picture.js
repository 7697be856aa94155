// tracklayer live map: the page's picture, built from the reports as they come (wire.js
// objects): every live track with its trail, which satellites fed which tracks, and where
// the reports last placed each satellite. The store keeps none of this for the page (its
// CPU is shared); the page does it.
"use strict";

window.tracklayerPicture = function () {
  // Points kept per track (one per report shown): 120, fewer in a raid so that all trails
  // together hold at most TRAIL_BUDGET points (each is projected every frame), at least
  // TRAIL_MIN: the server's snapshot rule (picture.py trail_length).
  const TRAIL_POINTS = 120, TRAIL_BUDGET = 20000, TRAIL_MIN = 10;
  const SAT_FORGET_S = 600;  // satellites seen this much (report time) before the newest are dropped
  const tracks = new Map();  // id -> {rep, trail: [[t, lat, lon, alt], ...]}
  const fed = new Map();     // sensor id -> {tracks: Set of track ids, t: newest report time}
  const placed = new Map();  // sensor id -> {id, lat, lon, alt, t}: where the reports placed it

  function noteSensors(rep) {
    for (const sid of rep.sensors) {
      let f = fed.get(sid);
      if (!f) { f = { tracks: new Set(), t: rep.t }; fed.set(sid, f); }
      f.tracks.add(rep.id); f.t = Math.max(f.t, rep.t);
    }
    if (rep.status === "DELETED") for (const f of fed.values()) f.tracks.delete(rep.id);
    for (const p of rep.placed) {
      const old = placed.get(p.id);
      if (!old || p.t >= old.t) placed.set(p.id, p);
    }
  }

  // A report (with `trail` when it comes from a snapshot); an older revision than the one
  // shown changes nothing, a DELETED one removes the track.
  function apply(rep) {
    noteSensors(rep);
    if (rep.status === "DELETED") { tracks.delete(rep.id); return; }
    let t = tracks.get(rep.id);
    if (!t) { t = { rep, trail: rep.trail || [] }; tracks.set(rep.id, t); }
    else if (t.rep.rev > rep.rev) return;
    t.rep = rep;
    if (!rep.trail && rep.lat != null) {
      t.trail.push([rep.t, rep.lat, rep.lon, rep.alt]);
      const keep = Math.max(TRAIL_MIN, Math.min(TRAIL_POINTS, Math.floor(TRAIL_BUDGET / tracks.size)));
      if (t.trail.length > keep) t.trail.splice(0, t.trail.length - keep);
    }
    delete rep.trail;
  }

  function clear() { tracks.clear(); fed.clear(); placed.clear(); }

  // The satellites list, by id: {id, tracks (ids it fed), t (newest report), pos (where
  // placed, or null)}: those that fed a live track, or any track in the last 10 min.
  function satellites() {
    let newest = -Infinity;
    for (const p of placed.values()) newest = Math.max(newest, p.t);
    for (const [sid, p] of placed) if (newest - p.t > SAT_FORGET_S) placed.delete(sid);
    newest = -Infinity;
    for (const f of fed.values()) newest = Math.max(newest, f.t);
    for (const [sid, f] of fed) if (!f.tracks.size && newest - f.t > SAT_FORGET_S) fed.delete(sid);
    return [...fed.keys()].sort().map((id) => {
      const f = fed.get(id);
      return { id, tracks: [...f.tracks].sort(), t: f.t, pos: placed.get(id) || null };
    });
  }

  // Picture time: the newest report's state time (s), or null.
  function latest() {
    let out = null;
    for (const t of tracks.values()) if (out === null || t.rep.t > out) out = t.rep.t;
    return out;
  }

  return { tracks, apply, clear, satellites, latest };
};

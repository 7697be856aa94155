// tracklayer live map, drawing the picture on the canvas: trails, impact ellipses and
// launch points, lines of sight, satellites and the tracks' dots and labels, each kind
// in as few paths as it takes (a raid's 1,000 tracks in a handful of fills and strokes).
// Degrees in (geo.js projects), CSS pixels out. Used by livemap.js as
// window.tracklayerDraw(ctx, tracks, geo, view, drawn, ui); ui.selected / ui.highlight: the
// selected track id and the satellite id under the mouse in the list (or null).
"use strict";

window.tracklayerDraw = function (ctx, tracks, geo, view, drawn, ui) {
  const PHASE_COLOUR = {
    BOOST: "#ffb020", MIDCOURSE: "#36c5ff", REENTRY: "#ff4d4d", GLIDE: "#d07bff",
    UNSPECIFIED: "#a3adba",
  };
  const LABEL_LIMIT = 150;   // ids drawn when at most this many tracks are on screen
  const SAT_COLOUR = "#f4f1a6";
  const SIGHT_S = 1.5;       // lines of sight: tracks reported within this of the newest report
  // With more lines of sight (track -> impact lines) than this, as in a raid, only the
  // selected track's (or those of the satellite under the mouse in the list) are drawn.
  const SIGHT_LIMIT = 60, CONNECT_LIMIT = 60;
  const { project, strokeLine, ellipsePoints, greatCircle } = geo;
  let screen = [];           // [x, y, id] of each drawn sub-point (hover)
  let satScreen = [];        // [x, y, sensor id] of each drawn satellite (hover)

  function colour(rep) { return PHASE_COLOUR[rep.phase] || PHASE_COLOUR.UNSPECIFIED; }
  // Where dots overlap (a raid seen whole), the more urgent phase is drawn on top:
  // reentry, then glide, boost, midcourse, unknown.
  const ON_TOP = ["UNSPECIFIED", "MIDCOURSE", "BOOST", "GLIDE", "REENTRY"].map((p) => PHASE_COLOUR[p]);
  function rank(c) { return ON_TOP.indexOf(c); }

  function drawTrails(w, h) {
    const byColour = new Map();
    for (const t of tracks.values()) {
      const c = colour(t.rep);
      if (!byColour.has(c)) byColour.set(c, []);
      byColour.get(c).push(t);
    }
    ctx.lineWidth = 1.6; ctx.globalAlpha = 0.7;
    for (const [c, list] of [...byColour].sort((a, b) => rank(a[0]) - rank(b[0]))) {
      ctx.beginPath();
      for (const t of list) strokeLine(ctx, t.trail, w, h, 1);  // [t, lat, lon, alt]
      ctx.strokeStyle = c; ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  // A ground ellipse's k-sigma outline ([lat, lon] points), worked out once per report:
  // the 3-sigma outline is the 1-sigma one scaled about the centre (linear in k).
  function outline(e, k) {
    if (!e.o1) e.o1 = ellipsePoints(e, 1);
    if (k === 1) return e.o1;
    if (!e.o3) e.o3 = e.o1.map(([lat, lon]) => [e.lat + 3 * (lat - e.lat), e.lon + 3 * (lon - e.lon)]);
    return e.o3;
  }

  // Impact ellipses and launch points, each kind as one path (a raid has hundreds: one
  // stroke per kind, not per ellipse).
  function drawGround(w, h) {
    let impacts = 0;
    for (const t of tracks.values()) if (t.rep.impact) impacts++;
    const connect = impacts <= CONNECT_LIMIT;  // track -> impact lines; in a raid: selected only
    const lines = new Map();  // phase colour -> Path2D of track -> impact lines
    const one = new Path2D(), three = new Path2D(), marks = new Path2D();
    const launch = new Path2D(), triangles = new Path2D();
    drawn.impactEllipses = 0; drawn.launches = 0; drawn.impactEllipsePx = 0;
    for (const t of tracks.values()) {
      const r = t.rep;
      if (r.impact && r.impact.lat != null) {
        const p = project(r.impact.lat, r.impact.lon, w, h), q = project(r.lat, r.lon, w, h);
        if (p[2] && q[2] && (connect || r.id === ui.selected)) {
          const c = colour(r);
          if (!lines.has(c)) lines.set(c, new Path2D());
          lines.get(c).moveTo(q[0], q[1]); lines.get(c).lineTo(p[0], p[1]);
        }
        if (p[2]) {
          strokeLine(one, outline(r.impact, 1), w, h); strokeLine(three, outline(r.impact, 3), w, h);
          marks.moveTo(p[0] - 4, p[1] - 4); marks.lineTo(p[0] + 4, p[1] + 4);
          marks.moveTo(p[0] + 4, p[1] - 4); marks.lineTo(p[0] - 4, p[1] + 4);
          const edge = project(...outline(r.impact, 3)[0], w, h);
          drawn.impactEllipsePx = Math.max(drawn.impactEllipsePx, Math.hypot(edge[0] - p[0], edge[1] - p[1]));
          drawn.impactEllipses++;
        }
      }
      if (r.launch && r.launch.lat != null) {
        const p = project(r.launch.lat, r.launch.lon, w, h);
        if (!p[2]) continue;
        strokeLine(launch, outline(r.launch, 1), w, h);
        triangles.moveTo(p[0], p[1] - 6); triangles.lineTo(p[0] + 5, p[1] + 4);
        triangles.lineTo(p[0] - 5, p[1] + 4); triangles.closePath();
        drawn.launches++;
      }
    }
    ctx.globalAlpha = 0.35; ctx.lineWidth = 1; ctx.setLineDash([2, 4]);
    for (const [c, path] of lines) { ctx.strokeStyle = c; ctx.stroke(path); }
    ctx.globalAlpha = 0.9; ctx.strokeStyle = "#ff4d4d"; ctx.setLineDash([]);
    ctx.lineWidth = 1.6; ctx.stroke(one);
    ctx.lineWidth = 1.2; ctx.setLineDash([5, 4]); ctx.stroke(three); ctx.setLineDash([]);
    ctx.globalAlpha = 1; ctx.stroke(marks);
    ctx.strokeStyle = "#8fe388"; ctx.fillStyle = "#8fe388"; ctx.stroke(launch); ctx.fill(triangles);
  }

  // Lines of sight of the last report of each recently reported track: satellite -> track.
  // A raid's hundreds would hide the picture: then only those of the selected track or of
  // the satellite under the mouse in the list.
  function drawSightLines(w, h, sats) {
    let newest = -Infinity;
    for (const t of tracks.values()) newest = Math.max(newest, t.rep.t);
    let lines = [];
    for (const t of tracks.values()) {
      const r = t.rep;
      if (r.lat == null || newest - r.t > SIGHT_S) continue;
      for (const sid of r.sensors) if (sats.has(sid)) lines.push([sats.get(sid), r]);
    }
    if (lines.length > SIGHT_LIMIT) {
      lines = lines.filter(([s, r]) => r.id === ui.selected || s.id === ui.highlight);
    }
    ctx.beginPath();
    for (const [s, r] of lines) {
      strokeLine(ctx, greatCircle([s.pos.lat, s.pos.lon], [r.lat, r.lon], 16), w, h);
    }
    ctx.strokeStyle = SAT_COLOUR; ctx.globalAlpha = lines.length > 30 ? 0.2 : 0.35; ctx.lineWidth = 0.9;
    ctx.setLineDash([3, 3]); ctx.stroke(); ctx.setLineDash([]); ctx.globalAlpha = 1;
    drawn.sightLines = lines.length;
  }

  function drawSatellites(w, h, sats) {
    satScreen = [];
    const labels = sats.size <= 40 || view.zoom >= 3;
    ctx.font = "10px system-ui, 'DejaVu Sans', sans-serif"; ctx.textBaseline = "middle";
    for (const s of sats.values()) {
      const p = project(s.pos.lat, s.pos.lon, w, h);
      if (!p[2]) continue;
      satScreen.push([p[0], p[1], s.id]);
      const lit = ui.highlight === s.id;
      ctx.fillStyle = SAT_COLOUR; ctx.strokeStyle = SAT_COLOUR; ctx.lineWidth = 1.2;
      ctx.globalAlpha = lit ? 1 : 0.85;
      ctx.fillRect(p[0] - 2.5, p[1] - 2.5, 5, 5);  // body and two solar panels
      ctx.beginPath(); ctx.moveTo(p[0] - 8, p[1]); ctx.lineTo(p[0] - 3, p[1]);
      ctx.moveTo(p[0] + 3, p[1]); ctx.lineTo(p[0] + 8, p[1]); ctx.stroke();
      if (lit) { ctx.beginPath(); ctx.arc(p[0], p[1], 10, 0, 2 * Math.PI); ctx.stroke(); }
      if (labels || lit) {
        ctx.globalAlpha = lit ? 1 : 0.6; ctx.fillText(s.id, p[0] + 10, p[1] + 9);
      }
      ctx.globalAlpha = 1;
    }
    drawn.satellites = satScreen.length;
  }

  function drawPoints(w, h) {
    screen = [];
    const labels = tracks.size <= LABEL_LIMIT || view.zoom >= 4;
    drawn.labels = 0;
    const boxes = [];  // labels drawn so far: one that would overlap another is left out
    const free = (x, y, text) => {
      const w = ctx.measureText(text).width;
      if (boxes.some((b) => x < b[0] + b[2] + 4 && x + w + 4 > b[0] && Math.abs(y - b[1]) < 13)) return false;
      boxes.push([x, y, w]);
      return true;
    };
    // One path per colour and kind (filled: confirmed, ring: tentative / coasting), not
    // one per track: a raid's 1,000 dots in a handful of fills.
    const dots = new Map();  // colour + solid -> [colour, solid, Path2D]
    const rings = new Path2D(), named = [];
    let chosen = null;
    for (const t of tracks.values()) {
      const r = t.rep;
      if (r.lat == null) continue;
      const p = project(r.lat, r.lon, w, h);
      if (!p[2]) continue;
      screen.push([p[0], p[1], r.id]);
      const c = colour(r), solid = r.status === "CONFIRMED", key = c + solid;
      if (!dots.has(key)) dots.set(key, [c, solid, new Path2D()]);
      const path = dots.get(key)[2];
      path.moveTo(p[0] + (solid ? 4.5 : 4), p[1]); path.arc(p[0], p[1], solid ? 4.5 : 4, 0, 2 * Math.PI);
      if (ui.highlight && r.sensors.includes(ui.highlight)) {
        rings.moveTo(p[0] + 7, p[1]); rings.arc(p[0], p[1], 7, 0, 2 * Math.PI);
      }
      if (r.id === ui.selected) chosen = p;
      if (labels || r.id === ui.selected) named.push([p, r.id]);
    }
    ctx.lineWidth = 2;
    const order = [...dots.values()].sort((a, b) => rank(a[0]) - rank(b[0]));
    for (const [c, solid, path] of order) {
      if (solid) { ctx.fillStyle = c; ctx.fill(path); } else { ctx.strokeStyle = c; ctx.stroke(path); }
    }
    ctx.strokeStyle = "#f4f1a6"; ctx.lineWidth = 1.5; ctx.stroke(rings);
    if (chosen) {
      ctx.beginPath(); ctx.arc(chosen[0], chosen[1], 9, 0, 2 * Math.PI);
      ctx.strokeStyle = "#ffffff"; ctx.stroke();
    }
    ctx.font = "12px system-ui, 'DejaVu Sans', sans-serif"; ctx.textBaseline = "middle";
    ctx.fillStyle = "#e8eef6";
    for (const [p, id] of named) {
      if (id === ui.selected || free(p[0] + 8, p[1] - 8, id)) { ctx.fillText(id, p[0] + 8, p[1] - 8); drawn.labels++; }
    }
    drawn.tracks = screen.length;
  }

  return {
    colour, SAT_COLOUR, trails: drawTrails, ground: drawGround, sightLines: drawSightLines,
    satellites: drawSatellites, points: drawPoints,
    get screen() { return screen; }, get satScreen() { return satScreen; },
  };
};

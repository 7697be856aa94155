// tracklayer live map, geometry: the orthographic globe and the equirectangular map
// (project, lines broken at the horizon or the map's seam), Natural Earth land decoded
// from TopoJSON, the cached background (graticule and land), ground ellipses,
// great-circle lines, framing a set of points and the scale bar.
// Degrees in, CSS pixels out. Used by livemap.js as window.tracklayerGeo(view).
"use strict";

window.tracklayerGeo = function (view) {
  const D2R = Math.PI / 180;
  const R_EARTH = 6371008.8; // m, mean radius (ellipses are drawn on a sphere)
  let land = [];             // polygons: [outer ring, holes...], each ring of [lon, lat]
  let bg = null, bgKey = "";        // the background of the view drawn last
  let spare = null, spareKey = "";  // one drawn ahead for a view about to be applied (prepare)
  let backgrounds = 0;              // backgrounds drawn so far

  // ------------------------------------------------------------------ projections
  function wrap(d) { return ((d + 540) % 360) - 180; }
  function globeRadius(w, h) { return Math.min(w, h) * 0.46 * view.zoom; }
  function flatScale(w, h) { return Math.min(w / 360, h / 180) * view.zoom; }

  // -> [x, y, visible]; behind the globe: the point pushed onto the limb.
  function project(lat, lon, w, h) {
    if (view.mode === "globe") {
      const R = globeRadius(w, h), p = lat * D2R, l = (lon - view.lon0) * D2R;
      const p0 = view.lat0 * D2R;
      const cp = Math.cos(p), x = R * cp * Math.sin(l);
      const y = R * (Math.cos(p0) * Math.sin(p) - Math.sin(p0) * cp * Math.cos(l));
      const cosc = Math.sin(p0) * Math.sin(p) + Math.cos(p0) * cp * Math.cos(l);
      if (cosc >= 0) return [w / 2 + x, h / 2 - y, true];
      const n = Math.hypot(x, y) || 1;
      return [w / 2 + (x / n) * R, h / 2 - (y / n) * R, false];
    }
    const s = flatScale(w, h);
    return [w / 2 + wrap(lon - view.lon0) * s, h / 2 - (lat - view.lat0) * s, true];
  }

  // ------------------------------------------------------------------ land (TopoJSON)
  function decodeTopology(topo) {
    const [sx, sy] = topo.transform.scale, [tx, ty] = topo.transform.translate;
    const arcs = topo.arcs.map((arc) => {
      let x = 0, y = 0;
      return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
    });
    const ring = (ids) => {
      const out = [];
      for (const i of ids) {
        const a = i >= 0 ? arcs[i] : arcs[~i].slice().reverse();
        out.push(...(out.length ? a.slice(1) : a));
      }
      return out;
    };
    const out = [];
    for (const g of topo.objects.land.geometries) {
      const polys = g.type === "Polygon" ? [g.arcs] : g.type === "MultiPolygon" ? g.arcs : [];
      for (const poly of polys) out.push(poly.map(ring));
    }
    return out;
  }

  function keyOf(w, h) { return [view.mode, view.lon0, view.lat0, view.zoom, w, h, land.length].join(); }
  function ringCount() { let n = 0; for (const poly of land) n += poly.length; return n; }

  // The flat map's centre latitude kept so that no empty band shows beyond a pole.
  function clampFlat(w, h) {
    if (view.mode !== "flat") return;
    const half = Math.min(90, h / 2 / flatScale(w, h));
    view.lat0 = Math.max(-90 + half, Math.min(90 - half, view.lat0));
  }

  // The graticule and land of the current view (a canvas of w x h CSS pixels), drawn once
  // per view: a copy per frame.
  function background(w, h) {
    const key = keyOf(w, h);
    if (bg && bgKey === key) return bg;
    if (spare && spareKey === key) {
      [bg, spare, bgKey, spareKey] = [spare, bg, spareKey, bgKey];
      return bg;
    }
    bg = drawBackground(bg, w, h); bgKey = key;
    return bg;
  }

  // Draw the background of the view `next` ({lon0, lat0, zoom}) ahead, so that applying the
  // view later costs one copy (the land is the costliest part of a frame).
  function prepare(next, w, h) {
    const saved = [view.lon0, view.lat0, view.zoom];
    [view.lon0, view.lat0, view.zoom] = [next.lon0, next.lat0, next.zoom];
    clampFlat(w, h);
    const key = keyOf(w, h);
    if (key !== bgKey && key !== spareKey) { spare = drawBackground(spare, w, h); spareKey = key; }
    [view.lon0, view.lat0, view.zoom] = saved;
  }

  function drawBackground(canvas, w, h) {
    backgrounds++;
    const dpr = window.devicePixelRatio || 1;
    canvas = canvas || document.createElement("canvas");
    canvas.width = w * dpr; canvas.height = h * dpr;
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#070b12"; g.fillRect(0, 0, w, h);
    if (view.mode === "globe") {
      const R = globeRadius(w, h);
      const grad = g.createRadialGradient(w / 2 - R * 0.3, h / 2 - R * 0.3, R * 0.1, w / 2, h / 2, R);
      grad.addColorStop(0, "#10233d"); grad.addColorStop(1, "#0a1628");
      g.fillStyle = grad; g.beginPath(); g.arc(w / 2, h / 2, R, 0, 2 * Math.PI); g.fill();
      g.strokeStyle = "#2a4466"; g.lineWidth = 1.2; g.stroke();
    } else {
      const s = flatScale(w, h);
      g.fillStyle = "#0a1628";
      g.fillRect(0, h / 2 - (90 - view.lat0) * s, w, 180 * s);
    }
    drawGraticule(g, w, h);
    drawLand(g, w, h);
    return canvas;
  }

  // pts: [[lat, lon], ...] (or lat at index i0 of each point: a trail's [t, lat, lon, alt]
  // with i0 = 1); breaks at the horizon / the seam.
  // Points less than a pixel from the last one drawn are left out (but a line's last point
  // is drawn): a raid's trails and ellipses seen whole are mostly such points.
  function strokeLine(g, pts, w, h, i0 = 0) {
    let prev = null, held = null;  // the last point drawn; a point left out since
    for (const q of pts) {
      const p = project(q[i0], q[i0 + 1], w, h);
      if (!p[2]) {
        if (held) g.lineTo(held[0], held[1]);
        prev = held = null;
        continue;
      }
      const jump = prev && view.mode === "flat" && Math.abs(p[0] - prev[0]) > w / 2;
      if (!prev || jump) {
        if (held) g.lineTo(held[0], held[1]);
        g.moveTo(p[0], p[1]); prev = p; held = null;
      } else if (Math.abs(p[0] - prev[0]) + Math.abs(p[1] - prev[1]) < 1) held = p;
      else { g.lineTo(p[0], p[1]); prev = p; held = null; }
    }
    if (held) g.lineTo(held[0], held[1]);
  }

  // A ring's outline for filling on the globe: hidden stretches follow the limb (an arc
  // between the azimuths of two consecutive hidden points, the shorter way round).
  function limbPath(g, pts, w, h) {
    const R = globeRadius(w, h), cx = w / 2, cy = h / 2;
    let prev = null, swept = 0;
    for (const p of pts) {
      if (!prev) g.moveTo(p[0], p[1]);
      else if (!p[2] && !prev[2]) {
        const a0 = Math.atan2(prev[1] - cy, prev[0] - cx), a1 = Math.atan2(p[1] - cy, p[0] - cx);
        let d = a1 - a0;
        while (d > Math.PI) d -= 2 * Math.PI;
        while (d < -Math.PI) d += 2 * Math.PI;
        g.arc(cx, cy, R, a0, a0 + d, d < 0);
        swept += d;
      } else g.lineTo(p[0], p[1]);
      prev = p;
    }
    g.closePath();
    return Math.abs(swept);  // net turn (rad) of the limb stretches
  }

  function drawGraticule(g, w, h) {
    g.beginPath();
    for (let lon = -180; lon < 180; lon += 30) {
      const pts = []; for (let lat = -90; lat <= 90; lat += 3) pts.push([lat, lon]);
      strokeLine(g, pts, w, h);
    }
    for (let lat = -60; lat <= 60; lat += 30) {
      const pts = []; for (let lon = -180; lon <= 180; lon += 3) pts.push([lat, lon]);
      strokeLine(g, pts, w, h);
    }
    g.strokeStyle = "rgba(90, 130, 180, 0.18)"; g.lineWidth = 0.8; g.stroke();
  }

  // Each land polygon is filled as one path with its holes (lakes such as the Caspian),
  // by the even-odd rule; every ring's outline is stroked (shores of lakes too).
  function drawLand(g, w, h) {
    g.fillStyle = "#1b2f47"; g.strokeStyle = "#5d86b3"; g.lineWidth = 0.8;
    if (view.mode === "globe") {
      const outlines = new Path2D();  // the visible stretches of every ring, stroked once
      for (const poly of land) {
        const path = new Path2D();
        let shown = false, filled = true;
        for (const ring of poly) {
          const pts = ring.map(([lon, lat]) => project(lat, lon, w, h));
          if (!pts.some((p) => p[2])) continue;
          shown = true;
          let prev = false;
          for (const p of pts) {
            if (p[2]) { if (prev) outlines.lineTo(p[0], p[1]); else outlines.moveTo(p[0], p[1]); }
            prev = p[2];
          }
          // a ring whose hidden part winds round the limb would fill the whole disc: outline only
          if (limbPath(path, pts, w, h) >= 1.5 * Math.PI) filled = false;
        }
        if (shown && filled) g.fill(path, "evenodd");
      }
      g.stroke(outlines);
      return;
    }
    const s = flatScale(w, h);
    for (const poly of land) {
      // rings unwrapped in longitude; a hole is put in the 360-degree copy of its outer
      // ring that contains it (the outer ring may run past the map's seam)
      const rings = [];
      let lo = Infinity, hi = -Infinity;
      for (const ring of poly) {
        let lon = view.lon0 + wrap(ring[0][0] - view.lon0), last = ring[0][0];
        const lons = [];
        for (const [l] of ring) { lon += wrap(l - last); last = l; lons.push(lon); }
        let shift = 0;
        if (rings.length) {
          shift = [0, -360, 360].find((k) => lons[0] + k >= lo && lons[0] + k <= hi) || 0;
        } else {
          for (const x of lons) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
        }
        rings.push(ring.map(([, lat], i) => [w / 2 + (lons[i] + shift - view.lon0) * s, h / 2 - (lat - view.lat0) * s]));
      }
      for (const dx of [-360 * s, 0, 360 * s]) {
        g.beginPath();
        for (const ring of rings) {
          ring.forEach(([x, y], i) => (i ? g.lineTo(x + dx, y) : g.moveTo(x + dx, y)));
          g.closePath();
        }
        g.fill("evenodd"); g.stroke();
      }
    }
  }

  // ------------------------------------------------------------------ tracks
  function ellipsePoints(e, k) {  // k-sigma ellipse as [[lat, lon], ...]
    const pts = [], ori = (e.ori || 0) * D2R, a = (e.a || 0) * k, b = (e.b || 0) * k;
    for (let i = 0; i <= 48; i++) {
      const th = (i / 48) * 2 * Math.PI, u = a * Math.cos(th), v = b * Math.sin(th);
      const north = u * Math.cos(ori) - v * Math.sin(ori);
      const east = u * Math.sin(ori) + v * Math.cos(ori);
      pts.push([e.lat + (north / R_EARTH) / D2R,
        e.lon + (east / (R_EARTH * Math.max(Math.cos(e.lat * D2R), 1e-6))) / D2R]);
    }
    return pts;
  }

  function greatCircle(a, b, n) {  // [lat, lon] a -> b as n + 1 points on the great circle
    const v = ([lat, lon]) => {
      const p = lat * D2R, l = lon * D2R;
      return [Math.cos(p) * Math.cos(l), Math.cos(p) * Math.sin(l), Math.sin(p)];
    };
    const u = v(a), w = v(b);
    const om = Math.acos(Math.max(-1, Math.min(1, u[0] * w[0] + u[1] * w[1] + u[2] * w[2])));
    if (om < 1e-9) return [a, b];
    const pts = [];
    for (let i = 0; i <= n; i++) {
      const f = i / n, k0 = Math.sin((1 - f) * om) / Math.sin(om), k1 = Math.sin(f * om) / Math.sin(om);
      const x = k0 * u[0] + k1 * w[0], y = k0 * u[1] + k1 * w[1], z = k0 * u[2] + k1 * w[2];
      pts.push([Math.atan2(z, Math.hypot(x, y)) / D2R, Math.atan2(y, x) / D2R]);
    }
    return pts;
  }

  // ------------------------------------------------------------------ framing, scale
  function spread(c, pts) {  // largest angle (rad) from the unit vector c to a [lat, lon]
    let dot = 1;
    for (const [lat, lon] of pts) {
      const p = lat * D2R, l = lon * D2R, cp = Math.cos(p);
      dot = Math.min(dot, c[0] * cp * Math.cos(l) + c[1] * cp * Math.sin(l) + c[2] * Math.sin(p));
    }
    return Math.acos(Math.max(-1, Math.min(1, dot)));
  }

  // The view that frames [lat, lon] points: centred on the middle of their smallest
  // enclosing cap (approximated: step towards the farthest point by 1/(i + 2),
  // Badoiu-Clarkson), zoomed (at most maxZoom) so that they all fit; -> {lon0, lat0, zoom,
  // c (unit vector of the centre), spread (rad), mode} or null without points. The view is
  // not changed (see differs, apply).
  function frame(pts, maxZoom) {
    if (!pts.length) return null;
    const n = pts.length, u = new Float64Array(3 * n);  // unit vectors, flat (no garbage)
    for (let i = 0; i < n; i++) {
      const p = pts[i][0] * D2R, l = pts[i][1] * D2R, cp = Math.cos(p);
      u[3 * i] = cp * Math.cos(l); u[3 * i + 1] = cp * Math.sin(l); u[3 * i + 2] = Math.sin(p);
    }
    let cx = u[0], cy = u[1], cz = u[2];
    for (let it = 0; it < 40; it++) {
      let far = 0, dmin = 2;
      for (let i = 0; i < 3 * n; i += 3) {
        const d = cx * u[i] + cy * u[i + 1] + cz * u[i + 2];
        if (d < dmin) { dmin = d; far = i; }
      }
      const f = 1 / (it + 2);
      cx += (u[far] - cx) * f; cy += (u[far + 1] - cy) * f; cz += (u[far + 2] - cz) * f;
    }
    const norm = Math.hypot(cx, cy, cz) || 1;
    const c = [cx / norm, cy / norm, cz / norm], [x, y, z] = c;
    const s = spread(c, pts);
    const fit = view.mode === "globe" ? 0.8 / Math.sin(Math.min(s * 1.3 + 0.02, Math.PI / 2))
      : 80 / Math.max((s * 1.3) / D2R, 2);
    return {
      lon0: Math.atan2(y, x) / D2R,
      lat0: Math.max(-60, Math.min(60, Math.atan2(z, Math.hypot(x, y)) / D2R)),
      zoom: Math.max(1, Math.min(maxZoom, fit)), c, spread: s, mode: view.mode,
    };
  }

  // Whether a framing (frame's result) shows the picture better than prev, the last one
  // applied: zoom off by more than 15%, or the centre moved by more than a tenth of the
  // framed radius. A changed view redraws the land, so a picture that only drifts keeps
  // its view.
  function differs(fit, prev) {
    if (!prev || prev.mode !== fit.mode) return true;
    const a = prev.c, b = fit.c;
    const moved = Math.acos(Math.max(-1, Math.min(1, a[0] * b[0] + a[1] * b[1] + a[2] * b[2])));
    const ratio = fit.zoom / prev.zoom;
    return ratio > 1.15 || ratio < 1 / 1.15 || moved > Math.max(fit.spread, 0.01) * 0.1;
  }

  function apply(fit) { view.lon0 = fit.lon0; view.lat0 = fit.lat0; view.zoom = fit.zoom; }

  // A scale bar (km at the centre of the view) so ellipses and distances can be judged;
  // returns its length in km.
  function drawScale(g, w, h) {
    const kmPerPx = view.mode === "globe" ? (R_EARTH / 1000) / globeRadius(w, h)
      : (111.195 * Math.cos(view.lat0 * D2R)) / flatScale(w, h);
    const target = kmPerPx * 120, step = 10 ** Math.floor(Math.log10(target));
    const km = [5, 2, 1].map((k) => k * step).find((k) => k <= target) || step;
    const px = km / kmPerPx, x = 14, y = h - 32;
    g.strokeStyle = "#d8e1ec"; g.fillStyle = "#d8e1ec"; g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(x, y - 5); g.lineTo(x, y); g.lineTo(x + px, y);
    g.lineTo(x + px, y - 5); g.stroke();
    g.font = "11px system-ui, 'DejaVu Sans', sans-serif"; g.textBaseline = "bottom";
    const label = `${km >= 1 ? km : km.toFixed(1)} km${view.mode === "globe" ? " (at centre)" : ""}`;
    g.fillText(label, x + 4, y - 7);
    return km;
  }

  return {
    wrap, globeRadius, flatScale, project, strokeLine, ellipsePoints, background, greatCircle,
    frame, differs, apply, prepare, clampFlat, spread, drawScale,
    setLand(topo) { land = decodeTopology(topo); },
    get landRings() { return ringCount(); },
    get landPolygons() { return land.length; },
    get backgrounds() { return backgrounds; },
  };
};

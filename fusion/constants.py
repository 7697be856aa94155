"""Physical constants (SI units). WGS-84 for the Earth's shape and gravity."""

GM_EARTH = 3.986004418e14  # m^3/s^2, WGS-84 gravitational parameter
R_EARTH_EQ = 6378137.0  # m, WGS-84 equatorial radius (also the J2 reference radius)
F_EARTH = 1.0 / 298.257223563  # WGS-84 flattening
R_EARTH_POLAR = R_EARTH_EQ * (1.0 - F_EARTH)  # m
R_EARTH_MEAN = 6371008.8  # m, IUGG mean radius (great-circle distances)
J2 = 1.08262668e-3  # unitless, EGM-96 / WGS-84 second zonal harmonic
OMEGA_EARTH = 7.292115146706979e-5  # rad/s, sidereal rotation rate (GMST rate)
G0 = 9.80665  # m/s^2, standard gravity (specific impulse, g-loads)
ATMOSPHERE_TOP_M = 100_000.0  # m, altitude where reentry begins (DESIGN §3)
SECONDS_PER_DAY = 86_400.0
JD_UNIX_EPOCH = 2440587.5  # Julian date of 1970-01-01T00:00:00 UTC

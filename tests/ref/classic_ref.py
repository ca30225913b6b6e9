#!/usr/bin/env python3
"""Reference trajectories for tests/env_test.c, written from Gymnasium's published equations
(Pendulum-v1, MountainCarContinuous-v0) in plain Python floats (float64), with float32 rounding
where Gymnasium stores float32 (actions; MountainCar's state after each step). Prints C arrays."""
import math
import struct


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def pendulum(th, thdot, actions, g=10.0):
    rows = []
    for a in actions:
        u = f32(f32(a) * 2.0)  # agent [-1, 1] -> torque [-2, 2]
        u = min(max(u, -2.0), 2.0)
        an = ((th + math.pi) % (2 * math.pi)) - math.pi
        cost = an ** 2 + 0.1 * thdot ** 2 + 0.001 * f32(u * u)
        newthdot = thdot + (3 * g / (2 * 1.0) * math.sin(th) + 3.0 / (1.0 * 1.0 ** 2) * u) * 0.05
        newthdot = min(max(newthdot, -8.0), 8.0)
        th = th + newthdot * 0.05
        thdot = newthdot
        rows.append((f32(math.cos(th)), f32(math.sin(th)), f32(thdot), f32(-cost), 0))
    return rows


def mountain_car(position, velocity, actions):
    rows = []
    for a in actions:
        a = f32(a)
        force = min(max(a, -1.0), 1.0)
        velocity += force * 0.0015 - 0.0025 * math.cos(3 * position)
        velocity = min(max(velocity, -0.07), 0.07)
        position += velocity
        position = min(max(position, -1.2), 0.6)
        if position == -1.2 and velocity < 0:
            velocity = 0.0
        term = position >= 0.45 and velocity >= 0.0
        reward = (100.0 if term else 0.0) - a * a * 0.1
        position, velocity = f32(position), f32(velocity)
        rows.append((position, velocity, f32(reward), int(term)))
        if term:
            break
    return rows


def pend_actions(n):
    return [f32(1.3 * math.sin(0.7 * k)) for k in range(n)]


def mc_actions(n):
    # push left (beyond the bound: clipped force, unclipped cost), then right, then left, right
    out = []
    for k in range(n):
        if k < 25:
            out.append(-1.5)
        elif k < 60:
            out.append(1.25)
        elif k < 95:
            out.append(-1.0)
        else:
            out.append(f32(0.9 + 0.3 * math.sin(0.1 * k)))
    return out


def emit(name, rows):
    print("static const double %s[][%d] = {" % (name, len(rows[0])))
    for r in rows:
        print("    {" + ", ".join("%.17g" % v for v in r) + "},")
    print("};")


if __name__ == "__main__":
    emit("pend_ref", pendulum(2.9, -0.4, pend_actions(60)))
    emit("pend_ref_b", pendulum(-3.1, 7.5, [f32(1.2)] * 30))
    rows = mountain_car(-0.5234, 0.0, mc_actions(400))
    print("// mountain car: %d steps, terminated at the end: %d" % (len(rows), rows[-1][3]))
    emit("mc_ref", rows)

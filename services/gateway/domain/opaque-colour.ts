// A background colour as the vendors' drop-in routes take it: hex (3, 4, 6 or 8 digits, with or
// without #) or a CSS colour name, as "#rrggbb". Shared by remove.bg's bg_color and Photoroom's
// bg_color / background.color, so both read a colour the same way. Pure.
import { CSS_COLOUR_NAMES } from "./css-colour-names.ts";

/** "#rrggbb"; or why not: not a colour at all, or translucent (this server renders opaque backgrounds only). */
export type OpaqueColour = { ok: true; hex: string } | { ok: false; problem: "not_a_colour" | "translucent" };

export function opaqueColourOf(value: string): OpaqueColour {
  const name = value.toLowerCase();
  if (Object.hasOwn(CSS_COLOUR_NAMES, name)) return { ok: true, hex: CSS_COLOUR_NAMES[name]! };
  const match = /^#?([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.exec(value);
  if (!match) return { ok: false, problem: "not_a_colour" };
  let hex = match[1]!.toLowerCase();
  if (hex.length <= 4) hex = [...hex].map((digit) => digit + digit).join("");
  if (hex.length === 8) {
    if (hex.slice(6) !== "ff") return { ok: false, problem: "translucent" };
    hex = hex.slice(0, 6);
  }
  return { ok: true, hex: `#${hex}` };
}

import { useState, type CSSProperties } from "react";
import type { Background } from "../images.ts";

/**
 * Before and after, one over the other on a transparency checkerboard: the slider (a range input,
 * so arrow keys move it) uncovers the original from the left.
 */
export function Compare({ name, originalUrl, resultUrl, background }: { name: string; originalUrl: string; resultUrl: string; background: Background }) {
  const [split, setSplit] = useState(50);
  const [originalShown, setOriginalShown] = useState(true);
  const behind: CSSProperties =
    background.kind === "color" ? { backgroundColor: background.color } : background.kind === "image" ? { backgroundImage: `url("${background.url}")`, backgroundSize: "cover", backgroundPosition: "center" } : {};
  return (
    <div className="compare">
      <div className="compare-stage checkerboard">
        <div className="compare-after" style={behind}>
          <img src={resultUrl} alt={`${name} with the background removed`} draggable={false} />
        </div>
        <div className="compare-before" style={{ clipPath: `inset(0 ${100 - split}% 0 0)` }} aria-hidden="true">
          {originalShown ? <img src={originalUrl} alt="" draggable={false} onError={() => setOriginalShown(false)} /> : <span className="compare-no-preview">original not shown by this browser</span>}
        </div>
        <div className="compare-handle" style={{ left: `${split}%` }} aria-hidden="true" />
      </div>
      <label className="compare-slider">
        <span className="visually-hidden">Compare before and after for {name}</span>
        <input type="range" min={0} max={100} value={split} onChange={(event) => setSplit(Number(event.target.value))} aria-valuetext={`${split}% original`} />
      </label>
    </div>
  );
}

import { useCallback, useEffect, useRef, useState, type DragEvent } from "react";
import { useQueryClient } from "@tanstack/react-query";
import type { Api } from "../api.ts";
import { Compare } from "../components/compare.tsx";
import { ProblemView } from "../components/problem.tsx";
import { OutputSize } from "../../../services/common/gen/cutline/inference/v1/image_options_pb.ts";
import { bytes, credits, percent } from "../format.ts";
import { DOWNLOAD_FORMATS, downloadName, render, save, zipAll, type Background, type DownloadFormat } from "../images.ts";
import { randomId, runUpload, type Upload } from "../uploads.ts";

/** Uploads running at once: each holds a WatchJob stream (WATCH_STREAMS_MAX is 16 per account by default). */
const UPLOADS_AT_ONCE = 3;
const ACCEPTED = "image/png,image/jpeg,image/webp,image/heic,image/heif,image/avif,image/gif,image/bmp,image/tiff,.heic,.heif";

const SIZES: readonly { size: OutputSize; label: string }[] = [
  { size: OutputSize.PREVIEW, label: "Preview (up to 0.25 MP)" },
  { size: OutputSize.FULL, label: "Full resolution" },
  { size: OutputSize.HD, label: "HD (plan's largest)" },
];

const PHASE_LABEL: Record<Upload["phase"], string> = {
  waiting: "Waiting",
  uploading: "Uploading",
  queued: "Queued",
  running: "Removing background",
  succeeded: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

export function ImagesPage({ api }: { api: Api }) {
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [size, setSize] = useState<OutputSize>(OutputSize.FULL);
  const [background, setBackground] = useState<Background>({ kind: "none" });
  const started = useRef(new Set<string>());
  const queryClient = useQueryClient();

  const update = useCallback((id: string, change: Partial<Upload>) => setUploads((all) => all.map((upload) => (upload.id === id ? { ...upload, ...change } : upload))), []);

  // Starts waiting uploads while fewer than UPLOADS_AT_ONCE run.
  useEffect(() => {
    const running = uploads.filter((upload) => started.current.has(upload.id) && !["succeeded", "failed", "cancelled"].includes(upload.phase)).length;
    const next = uploads.filter((upload) => upload.phase === "waiting" && !started.current.has(upload.id)).slice(0, Math.max(0, UPLOADS_AT_ONCE - running));
    for (const upload of next) {
      started.current.add(upload.id);
      void runUpload(api, upload, { size }, (change) => update(upload.id, change)).then(() => queryClient.invalidateQueries());
    }
  }, [uploads, api, size, update, queryClient]);

  const add = (files: FileList | null) => {
    if (!files || files.length === 0) return;
    const added = Array.from(files).map((file): Upload => ({ id: randomId(), file, originalUrl: URL.createObjectURL(file), phase: "waiting", progress: 0, attempt: 0 }));
    setUploads((all) => [...added, ...all]);
  };

  const retry = (upload: Upload) => {
    started.current.delete(upload.id);
    update(upload.id, { phase: "waiting", progress: 0, problem: undefined, attempt: upload.attempt + 1 });
  };

  return (
    <section aria-labelledby="images-title">
      <h1 id="images-title">Remove background</h1>
      <Dropzone onFiles={add} />
      <div className="options" role="group" aria-label="Options">
        <label>
          Size
          <select value={size} onChange={(event) => setSize(Number(event.target.value) as OutputSize)}>
            {SIZES.map((option) => (
              <option key={option.size} value={option.size}>
                {option.label}
              </option>
            ))}
          </select>
        </label>
        <BackgroundPicker background={background} onChange={setBackground} />
      </div>
      {uploads.length > 0 && <BatchBar uploads={uploads} background={background} />}
      <ul className="uploads">
        {uploads.map((upload) => (
          <UploadCard key={upload.id} upload={upload} background={background} onRetry={() => retry(upload)} />
        ))}
      </ul>
    </section>
  );
}

/** How many are done and what they cost, and every result in one zip. */
function BatchBar({ uploads, background }: { uploads: readonly Upload[]; background: Background }) {
  const [zipFormat, setZipFormat] = useState<DownloadFormat>("png");
  const [zipping, setZipping] = useState(false);
  const done = uploads.filter((upload) => upload.resultUrl !== undefined);
  const charged = uploads.reduce((sum, upload) => sum + (upload.phase === "succeeded" ? (upload.chargedMillicredits ?? 0n) : 0n), 0n);
  const zip = async () => {
    setZipping(true);
    try {
      save(await zipAll(done.map((upload) => ({ name: upload.file.name, url: upload.resultUrl! })), background, zipFormat), `cutline-${done.length}-images.zip`);
    } finally {
      setZipping(false);
    }
  };
  return (
    <div className="batch-bar">
      <span data-testid="batch-summary" aria-live="polite">
        {done.length} of {uploads.length} done · {credits(charged)} credits charged
      </span>
      <span className="batch-download">
        <label>
          Format
          <select value={zipFormat} onChange={(event) => setZipFormat(event.target.value as DownloadFormat)}>
            {DOWNLOAD_FORMATS.map((option) => (
              <option key={option.format} value={option.format}>
                {option.label}
              </option>
            ))}
          </select>
        </label>
        <button type="button" disabled={done.length === 0 || zipping} onClick={() => void zip()}>
          {zipping ? "Zipping…" : `Download all (${done.length}) as zip`}
        </button>
      </span>
    </div>
  );
}

function Dropzone({ onFiles }: { onFiles: (files: FileList | null) => void }) {
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const drop = (event: DragEvent) => {
    event.preventDefault();
    setOver(false);
    onFiles(event.dataTransfer.files);
  };
  return (
    <div
      className={`dropzone${over ? " dropzone-over" : ""}`}
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={drop}
    >
      <p>Drop images here</p>
      <p className="muted">PNG, JPEG, WebP, HEIC, AVIF… many at once</p>
      <button type="button" className="primary" onClick={() => input.current?.click()}>
        Choose images
      </button>
      <input
        ref={input}
        className="visually-hidden"
        type="file"
        accept={ACCEPTED}
        multiple
        aria-label="Choose images"
        data-testid="image-input"
        onChange={(event) => {
          onFiles(event.target.files);
          event.target.value = "";
        }}
      />
    </div>
  );
}

const SWATCHES = ["#ffffff", "#000000", "#f4f1ea", "#d9e7ff", "#ffe3e3", "#2f855a"];

function BackgroundPicker({ background, onChange }: { background: Background; onChange: (background: Background) => void }) {
  const input = useRef<HTMLInputElement>(null);
  return (
    <fieldset className="background-picker">
      <legend>Background</legend>
      <button type="button" aria-pressed={background.kind === "none"} className="swatch swatch-none checkerboard" onClick={() => onChange({ kind: "none" })}>
        <span className="visually-hidden">Transparent</span>
      </button>
      {SWATCHES.map((color) => (
        <button
          key={color}
          type="button"
          aria-pressed={background.kind === "color" && background.color === color}
          className="swatch"
          style={{ backgroundColor: color }}
          onClick={() => onChange({ kind: "color", color })}
        >
          <span className="visually-hidden">Colour {color}</span>
        </button>
      ))}
      <label className="swatch-custom">
        <span className="visually-hidden">Any colour</span>
        <input type="color" value={background.kind === "color" ? background.color : "#ffffff"} onChange={(event) => onChange({ kind: "color", color: event.target.value })} />
      </label>
      <button type="button" aria-pressed={background.kind === "image"} onClick={() => input.current?.click()}>
        {background.kind === "image" ? `Image: ${background.name}` : "Image…"}
      </button>
      <input
        ref={input}
        className="visually-hidden"
        type="file"
        accept="image/*"
        aria-label="Background image"
        tabIndex={-1}
        onChange={(event) => {
          const file = event.target.files?.[0];
          if (file) onChange({ kind: "image", url: URL.createObjectURL(file), name: file.name });
          event.target.value = "";
        }}
      />
    </fieldset>
  );
}

function UploadCard({ upload, background, onRetry }: { upload: Upload; background: Background; onRetry: () => void }) {
  const [saving, setSaving] = useState<DownloadFormat | undefined>();
  const name = upload.file.name;
  return (
    <li className="upload-card" data-phase={upload.phase} aria-label={name}>
      <div className="upload-head">
        <span className="upload-name" title={name}>
          {name}
        </span>
        <span className="muted">{bytes(upload.file.size)}</span>
        <span className="upload-phase" data-testid="phase">
          {PHASE_LABEL[upload.phase]}
          {upload.phase === "succeeded" && upload.chargedMillicredits !== undefined && ` · ${credits(upload.chargedMillicredits)} credits`}
        </span>
      </div>
      {upload.phase !== "failed" && upload.resultUrl === undefined && (
        <progress max={1} value={upload.phase === "waiting" || upload.phase === "uploading" ? undefined : upload.progress} aria-label={`Progress of ${name}`}>
          {percent(upload.progress)}
        </progress>
      )}
      {upload.problem && <ProblemView problem={upload.problem} onRetry={upload.problem.retryable ? onRetry : undefined} />}
      {upload.resultUrl && (
        <>
          <Compare name={name} originalUrl={upload.originalUrl} resultUrl={upload.resultUrl} background={background} />
          <div className="downloads" role="group" aria-label={`Download ${name}`}>
            {DOWNLOAD_FORMATS.map((option) => (
              <button
                key={option.format}
                type="button"
                disabled={saving !== undefined}
                onClick={async () => {
                  setSaving(option.format);
                  try {
                    save(await render(upload.resultUrl!, background, option.format), downloadName(name, option.format));
                  } finally {
                    setSaving(undefined);
                  }
                }}
              >
                {saving === option.format ? "Saving…" : option.label}
              </button>
            ))}
          </div>
        </>
      )}
    </li>
  );
}

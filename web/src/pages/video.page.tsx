import { useRef, useState } from "react";
import { useQuery as useTanstackQuery, useQueryClient } from "@tanstack/react-query";
import { JobStatus, type Job } from "../../../services/common/gen/cutline/gateway/v1/job_service_pb.ts";
import { Quality } from "../../../services/common/gen/cutline/inference/v1/quality_pb.ts";
import { VideoFormat } from "../../../services/common/gen/cutline/inference/v1/video_options_pb.ts";
import { serves, VIDEO_SERVICE, type Api } from "../api.ts";
import { ProblemView, Unavailable } from "../components/problem.tsx";
import { isUnavailable, jobProblem, problemOf, type Problem } from "../errors.ts";
import { bytes, credits, percent } from "../format.ts";
import { randomId } from "../uploads.ts";
import { isFinishedJobStatus } from "../../../services/common/finished-job-statuses.ts";
import { VIDEO_OUTPUTS, VIDEO_UPLOAD_ACCEPT } from "../../../services/common/video/video-formats.ts";

const QUALITIES: readonly { quality: Quality; label: string }[] = [
  { quality: Quality.FAST, label: "Fast" },
  { quality: Quality.BALANCED, label: "Balanced" },
  { quality: Quality.BEST, label: "Best (top rate)" },
];

interface VideoRun {
  name: string;
  phase: "uploading" | "processing" | "done" | "failed";
  job?: Job;
  resultUrl?: string;
  resultName?: string;
  problem?: Problem;
}

export function VideoPage({ api }: { api: Api }) {
  const available = useTanstackQuery({ queryKey: ["serves", VIDEO_SERVICE], queryFn: () => serves(api, VIDEO_SERVICE), staleTime: Infinity });
  const [file, setFile] = useState<File | undefined>();
  const [format, setFormat] = useState<VideoFormat>(VideoFormat.WEBM);
  const [quality, setQuality] = useState<Quality>(Quality.BALANCED);
  const [color, setColor] = useState("#ffffff");
  const [keepAudio, setKeepAudio] = useState(true);
  const [run, setRun] = useState<VideoRun | undefined>();
  const [unavailable, setUnavailable] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const queryClient = useQueryClient();

  if (available.data === false || unavailable) {
    return (
      <section aria-labelledby="video-title">
        <h1 id="video-title">Video</h1>
        <Unavailable feature="Video background removal" />
      </section>
    );
  }

  const submit = async () => {
    if (!file) return;
    const chosen = VIDEO_OUTPUTS.find((entry) => entry.format === format)!;
    setRun({ name: file.name, phase: "uploading" });
    try {
      const video = new Uint8Array(await file.arrayBuffer());
      const options = { format, quality, keepAudio, backgroundColor: format === VideoFormat.MP4 ? color : "" };
      const { job } = await api.video.submitVideo({ video, options, idempotencyKey: `web-video-${randomId()}` });
      if (!job) throw new Error("the server answered SubmitVideo without a job");
      let last = job;
      setRun({ name: file.name, phase: "processing", job });
      for await (const change of api.jobs.watchJob({ jobId: job.id })) {
        if (!change.job) continue;
        last = change.job;
        setRun({ name: file.name, phase: "processing", job: last });
        if (isFinishedJobStatus(last.status)) break;
      }
      if (last.status !== JobStatus.SUCCEEDED) {
        setRun({ name: file.name, phase: "failed", job: last, problem: jobProblem(last.errorReason, last.errorMessage) });
        return;
      }
      const { result } = await api.jobs.getJob({ jobId: last.id, includeResult: true });
      const url = URL.createObjectURL(new Blob([result as Uint8Array<ArrayBuffer>], { type: last.resultContentType || chosen.contentType }));
      setRun({ name: file.name, phase: "done", job: last, resultUrl: url, resultName: `${file.name.replace(/\.[^.]+$/, "")}-cutout.${chosen.extension}` });
      await queryClient.invalidateQueries();
    } catch (error) {
      if (isUnavailable(error)) setUnavailable(true);
      setRun({ name: file.name, phase: "failed", problem: problemOf(error) });
    }
  };

  const job = run?.job;
  return (
    <section aria-labelledby="video-title">
      <h1 id="video-title">Video</h1>
      <p className="muted">Billed per started second; the result keeps the alpha channel (WebM, MOV) or sits on a colour (MP4).</p>
      <div className="options" role="group" aria-label="Video options">
        <button type="button" className="primary" onClick={() => input.current?.click()}>
          {file ? `Video: ${file.name} (${bytes(file.size)})` : "Choose a video"}
        </button>
        <input ref={input} className="visually-hidden" type="file" accept={VIDEO_UPLOAD_ACCEPT} aria-label="Choose a video" tabIndex={-1} onChange={(event) => setFile(event.target.files?.[0])} />
        <label>
          Format
          <select value={format} onChange={(event) => setFormat(Number(event.target.value) as VideoFormat)}>
            {VIDEO_OUTPUTS.map((entry) => (
              <option key={entry.format} value={entry.format}>
                {entry.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Quality
          <select value={quality} onChange={(event) => setQuality(Number(event.target.value) as Quality)}>
            {QUALITIES.map((entry) => (
              <option key={entry.quality} value={entry.quality}>
                {entry.label}
              </option>
            ))}
          </select>
        </label>
        {format === VideoFormat.MP4 && (
          <label>
            Background
            <input type="color" value={color} onChange={(event) => setColor(event.target.value)} />
          </label>
        )}
        <label className="inline">
          <input type="checkbox" checked={keepAudio} onChange={(event) => setKeepAudio(event.target.checked)} /> Keep audio
        </label>
        <button type="button" disabled={!file || run?.phase === "uploading" || run?.phase === "processing"} onClick={() => void submit()}>
          Remove background
        </button>
      </div>
      {run && (
        <div className="upload-card" data-phase={run.phase}>
          <div className="upload-head">
            <span className="upload-name">{run.name}</span>
            <span className="upload-phase">
              {run.phase === "uploading" ? "Uploading" : run.phase === "processing" ? "Processing" : run.phase === "done" ? "Done" : "Failed"}
              {job && job.framesTotal > 0 && ` · frame ${job.framesDone} of ${job.framesTotal}`}
              {job && job.etaSeconds > 0 && run.phase === "processing" && ` · about ${job.etaSeconds} s left`}
              {run.phase === "done" && job && ` · ${credits(job.creditsChargedMillicredits)} credits`}
            </span>
          </div>
          {(run.phase === "uploading" || run.phase === "processing") && (
            <progress max={1} value={run.phase === "uploading" ? undefined : (job?.progress ?? 0)} aria-label={`Progress of ${run.name}`}>
              {percent(job?.progress ?? 0)}
            </progress>
          )}
          {run.problem && <ProblemView problem={run.problem} />}
          {run.resultUrl && (
            <>
              <div className="video-preview checkerboard">
                <video src={run.resultUrl} controls loop muted playsInline aria-label={`${run.name} with the background removed`} />
              </div>
              <a className="button" href={run.resultUrl} download={run.resultName}>
                Download {run.resultName}
              </a>
            </>
          )}
        </div>
      )}
    </section>
  );
}

// ListEmailOutbox and MarkEmailSent: the operator's view of the credit notices to relay.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import { reasonError } from "../../common/errors.ts";
import { OutboxEmailSchema, type OrchestratorService, type OutboxEmail } from "../../common/gen/cutline/orchestrator/v1/orchestrator_service_pb.ts";
import { EMAIL_OUTBOX_PAGE_MAX, type EmailOutboxRow, type EmailOutboxStore } from "../store/email-outbox.store.ts";

/** Rows listed when the caller names no page size. @default 100 */
export const EMAIL_OUTBOX_PAGE_DEFAULT = 100;

function outboxEmailMessage(row: EmailOutboxRow): OutboxEmail {
  return create(OutboxEmailSchema, {
    id: row.id,
    accountId: row.account_id,
    kind: row.kind,
    recipient: row.recipient ?? "",
    subject: row.subject,
    body: row.body,
    createdAt: timestampFromDate(new Date(row.created_at)),
    sentAt: row.sent_at ? timestampFromDate(new Date(row.sent_at)) : undefined,
  });
}

export function createEmailOutboxHandlers(outbox: EmailOutboxStore): Pick<ServiceImpl<typeof OrchestratorService>, "listEmailOutbox" | "markEmailSent"> {
  return {
    async listEmailOutbox(request) {
      const limit = request.pageSize === 0 ? EMAIL_OUTBOX_PAGE_DEFAULT : Math.min(request.pageSize, EMAIL_OUTBOX_PAGE_MAX);
      const rows = await outbox.list({ includeSent: request.includeSent, limit });
      return { emails: rows.map(outboxEmailMessage) };
    },
    async markEmailSent(request) {
      if (request.id === "") throw reasonError(Code.InvalidArgument, "invalid_argument", "id is required");
      const row = await outbox.markSent(request.id, new Date());
      if (!row) throw reasonError(Code.NotFound, "email_not_found", `no outbox email ${request.id}`);
      return { email: outboxEmailMessage(row) };
    },
  };
}

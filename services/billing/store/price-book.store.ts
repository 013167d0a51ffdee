// Price book versions: one active at a time (a partial unique index holds that line).
import { assertInvariant } from "../domain/outcomes.ts";
import type { PriceBook } from "../domain/price-book.ts";
import type { BillingExecutor } from "./schema.ts";

export class PriceBookStore {
  readonly #db: BillingExecutor;

  constructor(db: BillingExecutor) {
    this.#db = db;
  }

  async active(): Promise<PriceBook> {
    const row = await this.#db.selectFrom("billing_price_books").select("rules").where("active", "=", true).executeTakeFirst();
    assertInvariant(row, "no active price book (the seed migration installs one)");
    return (typeof row.rules === "string" ? JSON.parse(row.rules) : row.rules) as PriceBook;
  }

  /** True when the version is stored (active or not). */
  async exists(version: string): Promise<boolean> {
    return (await this.#db.selectFrom("billing_price_books").select("version").where("version", "=", version).executeTakeFirst()) !== undefined;
  }

  /** Stores the version (replacing a stored one of the same name) and makes it the only active one. Needs a transaction. */
  async activate(book: PriceBook, now: Date): Promise<void> {
    await this.#db.updateTable("billing_price_books").set({ active: false }).where("active", "=", true).execute();
    await this.#db
      .insertInto("billing_price_books")
      .values({ version: book.version, rules: JSON.stringify(book), active: true, created_at: now })
      .onConflict((conflict) => conflict.column("version").doUpdateSet({ rules: JSON.stringify(book), active: true }))
      .execute();
  }
}

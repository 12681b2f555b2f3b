"""The board resources the platform extracts (a list the DAG reads when it is parsed: no heavy imports)."""

SOURCE_NAME = "board"
RAW_SCHEMA = "raw_board"
# Each lands in raw_board.<resource>; invoice line items land in raw_board.invoice_details.
BOARD_RESOURCES = ("clients", "projects", "invoices")

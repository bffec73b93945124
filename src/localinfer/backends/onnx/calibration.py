"""Fixed calibration sentences for the int8 embedder's smoothing factors (quantize.py):
per-channel activation maxima are measured on these, so the derived model is the same
on every machine. Mixed on purpose: questions, prose, instructions, code, numbers,
short and paragraph length, as documents and queries are."""

CALIBRATION_TEXTS = [
    "How much money can I spend on a new laptop?",
    "Where is the spare key kept?",
    "What time does the night train to Vienna leave?",
    "password reset",
    "Invoice overdue",
    "Which afternoon is reserved for focused work without meetings?",
    "The cat sat on the mat.",
    "Tomato seedlings are hardened off for ten days before planting out.",
    "Receipts must be uploaded within fourteen days of purchase, or the expense is not "
    "reimbursed.",
    "def late_fee_cents(invoice, paid): return round(invoice.amount * 0.02)",
    "for i in range(10): total += values[i] * weights[i]",
    "SELECT name, email FROM users WHERE created_at > '2024-01-01' ORDER BY name;",
    "Error: connection refused (127.0.0.1:8080) after 3 retries",
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
    "Parental leave is twenty weeks for either parent, to be taken within the first two "
    "years after the birth or adoption of a child.",
    "If your work laptop is lost or stolen, report it to the IT desk within 24 hours so "
    "that the disk can be locked remotely and a replacement ordered.",
    "The dome shutter is closed automatically whenever the wind speed rises above forty "
    "kilometres per hour or the humidity sensor reports condensation.",
    "Return a new list containing all items from the iterable in ascending order. A "
    "custom key function can be supplied to customize the sort order, and the reverse "
    "flag can be set to request the result in descending order.",
    "This module provides access to some variables used or maintained by the interpreter "
    "and to functions that interact strongly with the interpreter. It is always "
    "available.",
    "The committee met on Tuesday to review the budget for the coming year; after a long "
    "discussion about travel costs, it agreed to prefer rail over air for trips shorter "
    "than six hours, and to revisit the rule in spring.",
    "Water the basil in the morning, never in the evening, and keep the pots out of the "
    "afternoon sun during July and August.",
    "Mitochondria are the membrane-bound organelles that generate most of the chemical "
    "energy needed to power a cell's biochemical reactions.",
    "The meeting has been moved to room 4.12 on the fourth floor.",
    "Raise ValueError if the string is not a valid ISO 8601 date.",
    "Bonjour, je voudrais réserver une table pour deux personnes ce soir.",
    "Der Zug nach Berlin fährt um zwölf Uhr ab.",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    "[CLS] [SEP] [PAD] [UNK]",
    "Thanks!",
    "Please find attached the signed contract and the updated schedule for the second "
    "phase of the project, which starts on the 3rd of March.",
    "A vector index stores one embedding per chunk of text and answers a query with the "
    "chunks whose embeddings are closest to the query's embedding.",
    "Use the --json flag to print OpenAI-shaped output instead of a table.",
    "The patient was advised to rest, drink fluids, and return if the fever persisted "
    "beyond three days.",
    "In 1969, two astronauts walked on the Moon while a third orbited above in the "
    "command module.",
    "Keep the API key out of version control: read it from the environment instead.",
    "Ingredients: 200 g flour, 2 eggs, 300 ml milk, a pinch of salt.",
]

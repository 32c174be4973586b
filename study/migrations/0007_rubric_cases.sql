-- Clinval schema, version 7: conversation cases and per-case rubric criteria (HealthBench-style).

-- A case may be a conversation: the messages before the answers, as canonical JSON text
-- [{"content": ..., "role": "system" | "user" | "assistant"}, ...], ending with a user turn
-- (the answers rated are the next assistant turn of each arm). NULL: a plain question.
ALTER TABLE cases ADD COLUMN conversation VARCHAR;

-- The case's rubric: the criteria its answers are rated against, as canonical JSON text
-- [{"criterion": ..., "key": "c1", "points": 5, "tags": ["axis:accuracy"]}, ...] in the order
-- given. Points may be negative (undesirable behaviour). NULL: the case has no rubric.
ALTER TABLE cases ADD COLUMN criteria VARCHAR;

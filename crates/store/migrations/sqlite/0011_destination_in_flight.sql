-- The claim counts a destination's messages in flight (a live lease): index them by lease so
-- that count reads only those, not every pending message (issue 19's benchmark found the scan).
-- Keep in step with migrations/postgres/0011_destination_in_flight.sql.
CREATE INDEX destination_messages_in_flight ON destination_messages(destination_id, locked_until);

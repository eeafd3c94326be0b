-- A send-only domain upgraded to send and receive gets a saga of its own: onto the mail server.
ALTER TABLE sagas DROP CONSTRAINT IF EXISTS sagas_kind_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_kind_check
    CHECK (kind IN ('provision', 'deprovision', 'receive'));

-- Statement-level INSERT triggers fire even when the statement inserts nothing. Every status batch runs
-- an INSERT … SELECT into engine_outbox (delivery reports for apps with a gateway), so with no gateway each
-- batch still woke the outbox deliverer, which then ran two queries for nothing (hundreds per second under
-- load). Notify only when rows really went in: the statement's transition table says so.

CREATE OR REPLACE FUNCTION engine_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted) THEN
        PERFORM pg_notify('engine_outbox', '');
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER engine_outbox_notify ON engine_outbox;
CREATE TRIGGER engine_outbox_notify AFTER INSERT ON engine_outbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION engine_notify_outbox();

CREATE OR REPLACE FUNCTION engine_notify_outbound() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted) THEN
        PERFORM pg_notify('engine_outbound', '');
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER engine_outbound_notify ON engine_outbound;
CREATE TRIGGER engine_outbound_notify AFTER INSERT ON engine_outbound
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION engine_notify_outbound();

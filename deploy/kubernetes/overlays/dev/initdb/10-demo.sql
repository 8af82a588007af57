-- The demo database of `pgmcp up`: "Bean & Leaf", a small online coffee and
-- tea shop. Run once, as the superuser, in a fresh database named `demo`.
-- The data is generated (generate_series and arithmetic, no random()), so
-- every run produces exactly the same rows:
--   8 categories, 40 products, 240 customers, 600 orders in 2025, ~1,500 order lines.

COMMENT ON DATABASE demo IS
    'Demo database of pgmcp up: Bean & Leaf, a small online coffee and tea shop (orders placed during 2025).';

CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded');
COMMENT ON TYPE order_status IS
    'Life of an order: pending -> paid -> shipped -> delivered; cancelled before shipping, refunded after payment.';

-- Catalogue -----------------------------------------------------------------

CREATE TABLE categories (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text NOT NULL
);
COMMENT ON TABLE categories IS 'Product categories of the shop''s catalogue.';
COMMENT ON COLUMN categories.name IS 'Category name as shown in the shop.';

CREATE TABLE products (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category_id integer NOT NULL REFERENCES categories (id),
    price       numeric(10, 2) NOT NULL CHECK (price > 0),
    stock       integer NOT NULL CHECK (stock >= 0),
    is_active   boolean NOT NULL DEFAULT true
);
CREATE INDEX products_category_id_idx ON products (category_id);
COMMENT ON TABLE products IS 'Everything the shop sells (or sold: see is_active).';
COMMENT ON COLUMN products.sku IS 'Stock keeping unit, the warehouse code of the product.';
COMMENT ON COLUMN products.price IS 'Current list price in EUR, VAT included.';
COMMENT ON COLUMN products.stock IS 'Units in the warehouse right now.';
COMMENT ON COLUMN products.is_active IS 'false once the product is discontinued; old orders still refer to it.';

INSERT INTO categories (name, description)
SELECT name, description
FROM (VALUES
    (1, 'Coffee beans', 'Whole-bean single origins and blends, roasted in-house.'),
    (2, 'Ground coffee', 'Pre-ground coffee for filter, espresso and moka pots.'),
    (3, 'Tea', 'Loose-leaf teas and infusions.'),
    (4, 'Brewing equipment', 'Drippers, presses, kettles, filters and scales.'),
    (5, 'Grinders', 'Manual and electric coffee grinders.'),
    (6, 'Mugs & cups', 'Mugs, cups, glasses and teapots.'),
    (7, 'Snacks', 'Biscuits and chocolate to go with a cup.'),
    (8, 'Gift sets', 'Boxed selections for presents.')
) AS v (n, name, description)
ORDER BY n;

INSERT INTO products (sku, name, category_id, price, stock, is_active)
SELECT v.sku, v.name, c.id, v.price, v.stock, v.is_active
FROM (VALUES
    (1, 'CB-ETH-250', 'Ethiopia Yirgacheffe, 250 g', 'Coffee beans', 14.50, 84, true),
    (2, 'CB-COL-250', 'Colombia Huila, 250 g', 'Coffee beans', 12.90, 120, true),
    (3, 'CB-BRA-1K', 'Brazil Cerrado, 1 kg', 'Coffee beans', 34.00, 35, true),
    (4, 'CB-KEN-250', 'Kenya AA Nyeri, 250 g', 'Coffee beans', 16.80, 0, true),
    (5, 'CB-GUA-250', 'Guatemala Antigua, 250 g', 'Coffee beans', 13.50, 66, true),
    (6, 'CB-SUM-250', 'Sumatra Mandheling, 250 g', 'Coffee beans', 13.90, 41, true),
    (7, 'CB-ESP-1K', 'House Espresso Blend, 1 kg', 'Coffee beans', 29.00, 150, true),
    (8, 'CB-DEC-250', 'Swiss Water Decaf, 250 g', 'Coffee beans', 12.50, 27, true),
    (9, 'GC-ESP-250', 'House Espresso Blend, ground, 250 g', 'Ground coffee', 8.90, 95, true),
    (10, 'GC-FIL-250', 'Morning Filter Blend, ground, 250 g', 'Ground coffee', 8.50, 110, true),
    (11, 'GC-DEC-250', 'Decaf, ground, 250 g', 'Ground coffee', 9.20, 18, true),
    (12, 'GC-MOK-250', 'Moka Pot Roast, ground, 250 g', 'Ground coffee', 8.70, 0, false),
    (13, 'TE-EGR-100', 'Earl Grey, loose leaf, 100 g', 'Tea', 7.50, 73, true),
    (14, 'TE-SEN-100', 'Japanese Sencha, 100 g', 'Tea', 11.00, 38, true),
    (15, 'TE-ASS-250', 'Assam Breakfast, 250 g', 'Tea', 9.80, 52, true),
    (16, 'TE-CHM-50', 'Chamomile Flowers, 50 g', 'Tea', 5.90, 0, false),
    (17, 'TE-MAT-30', 'Ceremonial Matcha, 30 g', 'Tea', 19.90, 12, true),
    (18, 'TE-ROO-100', 'Rooibos Vanilla, 100 g', 'Tea', 6.40, 60, true),
    (19, 'TE-OOL-100', 'Oolong Tie Guan Yin, 100 g', 'Tea', 13.20, 22, true),
    (20, 'BR-V60-02', 'Pour-over Dripper, size 02', 'Brewing equipment', 22.00, 30, true),
    (21, 'BR-FPR-1L', 'French Press, 1 l', 'Brewing equipment', 34.90, 14, true),
    (22, 'BR-AERO', 'AeroPress Coffee Maker', 'Brewing equipment', 39.95, 25, true),
    (23, 'BR-MOKA-6', 'Moka Pot, 6 cups', 'Brewing equipment', 31.50, 9, true),
    (24, 'BR-KET-GN', 'Gooseneck Kettle, 1 l', 'Brewing equipment', 54.00, 7, true),
    (25, 'BR-FLT-100', 'Paper Filters, 100 pcs', 'Brewing equipment', 5.50, 300, true),
    (26, 'BR-SCA-01', 'Brewing Scale with Timer', 'Brewing equipment', 27.00, 16, true),
    (27, 'GR-HND-01', 'Hand Grinder, ceramic burrs', 'Grinders', 45.00, 11, true),
    (28, 'GR-ELC-01', 'Electric Burr Grinder', 'Grinders', 129.00, 6, true),
    (29, 'GR-PRO-01', 'Pro Flat-burr Grinder', 'Grinders', 349.00, 2, true),
    (30, 'MU-CER-350', 'Ceramic Mug, 350 ml', 'Mugs & cups', 12.00, 64, true),
    (31, 'MU-DBL-250', 'Double-wall Glasses, 250 ml, set of 2', 'Mugs & cups', 18.50, 28, true),
    (32, 'MU-TRV-400', 'Travel Mug, 400 ml', 'Mugs & cups', 24.00, 33, true),
    (33, 'MU-ESP-4', 'Espresso Cups, set of 4', 'Mugs & cups', 21.00, 19, true),
    (34, 'MU-TEA-POT', 'Cast-iron Teapot, 0.8 l', 'Mugs & cups', 42.00, 8, true),
    (35, 'SN-BIS-200', 'Almond Biscotti, 200 g', 'Snacks', 4.90, 140, true),
    (36, 'SN-CHO-100', 'Dark Chocolate 72 %, 100 g', 'Snacks', 3.80, 200, true),
    (37, 'SN-STR-6', 'Stroopwafels, 6 pcs', 'Snacks', 4.20, 0, true),
    (38, 'SN-SHB-150', 'Butter Shortbread, 150 g', 'Snacks', 4.50, 75, true),
    (39, 'GS-DIS-01', 'Coffee Discovery Box', 'Gift sets', 49.00, 20, true),
    (40, 'GS-TEA-01', 'Tea Lover''s Gift Set', 'Gift sets', 39.00, 15, true)
) AS v (n, sku, name, category, price, stock, is_active)
JOIN categories c ON c.name = v.category
ORDER BY v.n;

-- Customers -----------------------------------------------------------------

CREATE TABLE customers (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL UNIQUE,
    country     char(2) NOT NULL,
    city        text NOT NULL,
    signed_up_at timestamptz NOT NULL,
    referred_by integer REFERENCES customers (id),
    marketing_opt_in boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE customers IS 'People with an account at the shop.';
COMMENT ON COLUMN customers.country IS 'ISO 3166-1 alpha-2 code of the shipping country.';
COMMENT ON COLUMN customers.signed_up_at IS 'When the account was created.';
COMMENT ON COLUMN customers.referred_by IS 'The customer who recommended the shop, if any (referral programme).';
COMMENT ON COLUMN customers.marketing_opt_in IS 'Whether the customer agreed to receive the newsletter.';

INSERT INTO customers (name, email, country, city, signed_up_at, referred_by, marketing_opt_in)
SELECT f.name || ' ' || l.name,
       lower(f.name || '.' || l.name) || '@example.com',
       place.country,
       place.city,
       CASE
           WHEN i <= 220 THEN timestamptz '2024-03-01 09:00:00+00'
               + make_interval(days => (i * 300) / 220, hours => (i * 7) % 12, mins => (i * 13) % 60)
           ELSE timestamptz '2025-12-01 10:00:00+00' + make_interval(days => i - 220, hours => i % 9)
       END,
       CASE WHEN i % 5 = 0 AND i > 10 THEN 1 + (i * 3) % (i - 1) END,
       i % 3 <> 0
FROM generate_series(1, 240) AS i
CROSS JOIN LATERAL (
    SELECT (ARRAY['Anna', 'Ben', 'Clara', 'David', 'Emma', 'Felix', 'Grace', 'Hugo', 'Ines', 'Jonas',
                  'Karin', 'Liam', 'Maya', 'Noah', 'Olivia', 'Paul', 'Quinn', 'Rosa', 'Samuel', 'Tara',
                  'Umar', 'Vera', 'William', 'Ximena', 'Yusuf', 'Zoe', 'Aiko', 'Bruno', 'Chloe', 'Diego',
                  'Elif', 'Finn'])[1 + i % 32] AS name
) AS f
CROSS JOIN LATERAL (
    SELECT (ARRAY['Adams', 'Becker', 'Costa', 'Dubois', 'Eriksson', 'Fischer', 'Garcia', 'Hansen', 'Ito',
                  'Jansen', 'Kowalski', 'Larsen', 'Martin', 'Nakamura', 'Olsen', 'Petrov', 'Quinlan',
                  'Rossi', 'Schmidt', 'Tanaka', 'Urban', 'Visser', 'Weber', 'Xu', 'Yilmaz', 'Zimmermann',
                  'Brown', 'Moreau', 'Novak', 'Silva', 'Walsh', 'Keller'])[1 + (5 * (i % 32) + i / 32) % 32] AS name
) AS l
CROSS JOIN LATERAL (
    SELECT (ARRAY['DE', 'DE', 'DE', 'US', 'US', 'US', 'GB', 'GB', 'FR', 'FR', 'NL', 'SE', 'ES', 'IT', 'CA', 'JP'])[k] AS country,
           (ARRAY['Berlin', 'Hamburg', 'Munich', 'New York', 'Seattle', 'Austin', 'London', 'Manchester',
                  'Paris', 'Lyon', 'Amsterdam', 'Stockholm', 'Madrid', 'Milan', 'Toronto', 'Tokyo'])[k] AS city
    FROM (SELECT 1 + (i * 7 + i / 5) % 16 AS k) AS pick
) AS place
ORDER BY i;

-- Orders --------------------------------------------------------------------

CREATE TABLE orders (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  integer NOT NULL REFERENCES customers (id),
    ordered_at   timestamptz NOT NULL,
    status       order_status NOT NULL DEFAULT 'pending',
    shipped_at   timestamptz,
    delivered_at timestamptz,
    CHECK (shipped_at IS NULL OR shipped_at >= ordered_at),
    CHECK (delivered_at IS NULL OR delivered_at >= shipped_at)
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_ordered_at_idx ON orders (ordered_at);
COMMENT ON TABLE orders IS 'One checkout by a customer; its lines are in order_items.';
COMMENT ON COLUMN orders.status IS 'Where the order is in its life; see the order_status type.';
COMMENT ON COLUMN orders.shipped_at IS 'When the parcel left the warehouse; NULL until then.';
COMMENT ON COLUMN orders.delivered_at IS 'When the carrier reported delivery; NULL until then.';

CREATE TABLE order_items (
    order_id   integer NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no    smallint NOT NULL CHECK (line_no > 0),
    product_id integer NOT NULL REFERENCES products (id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10, 2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_items_product_id_idx ON order_items (product_id);
COMMENT ON TABLE order_items IS 'The lines of an order: which product, how many, at what price.';
COMMENT ON COLUMN order_items.line_no IS 'Position of the line within its order, from 1.';
COMMENT ON COLUMN order_items.unit_price IS 'Price per unit in EUR paid in this order (the list price at the time).';

-- 600 orders over 2025 by customers 1-200 (201-220 never ordered, 221-240
-- signed up in December); the shop grows, so later months have more orders.
INSERT INTO orders (customer_id, ordered_at, status, shipped_at, delivered_at)
SELECT customer_id,
       ordered_at,
       status,
       shipped_at,
       CASE WHEN status IN ('delivered', 'refunded') THEN shipped_at + make_interval(days => 2 + i % 4, hours => i % 7) END
FROM (
    SELECT i, customer_id, ordered_at, status,
           CASE WHEN status IN ('shipped', 'delivered', 'refunded')
                THEN ordered_at + make_interval(days => 1 + i % 3, hours => i % 5) END AS shipped_at
    FROM (
        SELECT i,
               -- Every 7th order comes from one of 20 regulars; customers
               -- 201-240 have never ordered.
               CASE WHEN i % 7 = 0 THEN 1 + ((i / 7) * 3) % 20 ELSE 1 + (i * 97) % 200 END AS customer_id,
               timestamptz '2025-01-01 08:00:00+00'
                   + make_interval(days => floor(364 * ((i - 1) / 599.0) ^ 0.8)::int,
                                   hours => (i * 5) % 14, mins => (i * 17) % 60) AS ordered_at,
               (CASE
                    WHEN i % 29 = 0 THEN 'cancelled'
                    WHEN i % 41 = 0 THEN 'refunded'
                    WHEN i > 590 THEN 'pending'
                    WHEN i > 578 THEN 'paid'
                    WHEN i > 560 THEN 'shipped'
                    ELSE 'delivered'
                END)::order_status AS status
        FROM generate_series(1, 600) AS i
    ) AS base
) AS shipped
ORDER BY i;

-- 1 to 4 distinct products per order, at the product's list price. Products
-- are picked from a list holding each one in proportion to its popularity:
-- cheap everyday items (coffee above all) sell more often than grinders.
WITH pick AS (
    SELECT array_agg(p.id ORDER BY p.id) AS ids
    FROM products p
    JOIN categories c ON c.id = p.category_id
    CROSS JOIN LATERAL generate_series(1, greatest(1, round(
        180 / p.price * CASE c.name WHEN 'Coffee beans' THEN 3 WHEN 'Ground coffee' THEN 2 WHEN 'Snacks' THEN 0.5 ELSE 1 END
    ))::int) AS copies (n)
),
lines AS (
    SELECT DISTINCT ON (o.id, p.id) o.id AS order_id, l.n, p.id AS product_id, p.price
    FROM orders o
    CROSS JOIN pick
    CROSS JOIN LATERAL generate_series(1, 1 + (o.id * 7) % 4) AS l (n)
    JOIN products p ON p.id = pick.ids[1 + (o.id * 13 + l.n * 211 + (o.id * o.id) % 17) % cardinality(pick.ids)]
    ORDER BY o.id, p.id, l.n
)
INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)
SELECT order_id,
       row_number() OVER (PARTITION BY order_id ORDER BY n),
       product_id,
       CASE WHEN price > 40 THEN 1 ELSE 1 + (order_id + n * 2) % 3 END,
       price
FROM lines
ORDER BY order_id, n;

-- Views ---------------------------------------------------------------------

CREATE VIEW order_totals AS
SELECT o.id AS order_id,
       o.customer_id,
       o.ordered_at,
       o.status,
       count(*) AS lines,
       sum(oi.quantity) AS units,
       sum(oi.quantity * oi.unit_price) AS total
FROM orders o
JOIN order_items oi ON oi.order_id = o.id
GROUP BY o.id;
COMMENT ON VIEW order_totals IS 'One row per order with its number of lines, units and total in EUR.';

CREATE VIEW monthly_revenue AS
SELECT date_trunc('month', o.ordered_at AT TIME ZONE 'UTC')::date AS month,
       count(DISTINCT o.id) AS orders,
       sum(oi.quantity * oi.unit_price) AS revenue
FROM orders o
JOIN order_items oi ON oi.order_id = o.id
WHERE o.status NOT IN ('cancelled', 'refunded')
GROUP BY 1;
COMMENT ON VIEW monthly_revenue IS 'Orders and revenue in EUR per calendar month (UTC), without cancelled or refunded orders.';

ANALYZE;

-- The role the pgmcp worker connects as: it can read everything and change nothing.
CREATE ROLE pgmcp_demo LOGIN;
COMMENT ON ROLE pgmcp_demo IS 'Read-only role the pgmcp workers of pgmcp up connect as.';
ALTER ROLE pgmcp_demo SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA public TO pgmcp_demo;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgmcp_demo;
GRANT pg_monitor TO pgmcp_demo;
